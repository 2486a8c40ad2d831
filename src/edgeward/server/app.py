"""The fleet server's ASGI application.

One place turns an :class:`edgeward.errors.Error` into an HTTP answer: a
status code for its kind and ``{"error": message}``. A request that does not
validate gets 422 with the first problem named. Logs are JSON lines; metrics
are Prometheus text at ``/metrics``; ``/healthz`` says whether the database
answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgeward import __version__, errors
from edgeward.server.api import (
    alerts,
    apps,
    appstatus,
    deps,
    escrow,
    findings,
    gateways,
    logs,
    operators,
    remediation,
    repository,
    rules,
    secrets,
    security,
    telemetry,
    updates,
)
from edgeward.server.api.repository import MAX_METADATA
from edgeward.server.app_errors import headers_of, status_of
from edgeward.server.services.repository import MAX_BLOB
from edgeward.server.state import ServerState
from edgeward.server.web import alerts as alerts_web
from edgeward.server.web import findings as findings_web
from edgeward.server.web import logs as logs_web
from edgeward.server.web import routes as web
from edgeward.server.web import secrets as secrets_web
from edgeward.server.web import security as security_web

log = logging.getLogger("edgeward.server")
MAX_BODY = 256 * 1024  # the largest legitimate body (a quote, a record) is a few KiB
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}

class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, sort_keys=True)


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="edgeward fleet server", version=__version__)
    app.state.edgeward = state
    metrics = CollectorRegistry()
    requests = Counter("edgeward_http_requests", "HTTP requests", ["route", "status"],
                       registry=metrics)
    latency = Histogram("edgeward_http_request_seconds", "HTTP request latency", ["route"],
                        registry=metrics)

    @app.exception_handler(errors.Error)
    async def on_error(request: Request, error: errors.Error) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=status_of(error),
                            headers=headers_of(error))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # routing misses, a body that is not even UTF-8: still one clear error line
        return JSONResponse({"error": errors.one_line(str(error.detail))},
                            status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = errors.one_line(f"invalid request: {where}: {first.get('msg', 'malformed')}")
        return JSONResponse({"error": message}, status_code=422)

    @app.middleware("http")
    async def credentials_first(request: Request,
                                call_next: Callable[[Request], Awaitable[Response]]
                                ) -> Response:
        length = request.headers.get("content-length")
        limit = MAX_BODY
        if request.method == "PUT" and request.url.path.startswith("/v1/repository/"):
            # target files stream to disk; an os role lists every release published
            limit = MAX_BLOB if "/blobs/" in request.url.path else MAX_METADATA
        elif request.url.path == "/v1/gateway/events":  # up to 500 events of 2 KiB detail
            limit = security.MAX_EVENTS_BODY
        elif request.url.path == "/v1/gateway/logs":  # up to 1000 lines of 2000 characters
            limit = logs.MAX_LOGS_BODY
        elif request.url.path == "/v1/gateway/audit":  # up to 500 findings of 8 KiB text
            limit = findings.MAX_AUDIT_BODY
        if length is not None and (not length.isdigit() or int(length) > limit):
            return JSONResponse({"error": f"request body over {limit} bytes"},
                                status_code=413)
        if length is None and request.headers.get("transfer-encoding"):
            return JSONResponse({"error": "a request body needs a Content-Length"},
                                status_code=411)
        refusal = await run_in_threadpool(deps.missing_credentials, request)
        if refusal is not None:
            return JSONResponse({"error": refusal}, status_code=401)
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.middleware("http")
    async def observe(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - start
        requests.labels(name, str(response.status_code)).inc()
        latency.labels(name).observe(elapsed)
        log.info("request", extra={"fields": {
            "method": request.method, "route": name, "status": response.status_code,
            "ms": round(elapsed * 1000, 2)}})
        return response

    @app.get("/healthz", tags=["server"])
    def healthz() -> JSONResponse:
        try:
            with state.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as e:  # the health check reports any failure
            return JSONResponse({"status": "unhealthy", "database": type(e).__name__},
                                status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "version": __version__})

    @app.get("/metrics", tags=["server"])
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    app.include_router(gateways.router)
    app.include_router(operators.router)
    app.include_router(repository.router)
    app.include_router(updates.router)
    app.include_router(apps.router)
    app.include_router(security.router)
    app.include_router(logs.router)
    app.include_router(appstatus.router)
    app.include_router(secrets.router)
    app.include_router(escrow.router)
    app.include_router(alerts.router)
    app.include_router(remediation.router)
    app.include_router(findings.router)
    app.include_router(telemetry.router)
    app.include_router(rules.router)
    app.include_router(web.router)
    app.include_router(security_web.router)
    app.include_router(logs_web.router)
    app.include_router(findings_web.router)
    app.include_router(secrets_web.router)
    app.include_router(alerts_web.router)
    return app
