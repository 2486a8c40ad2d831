"""Property-based fuzzing of the fleet server's OpenAPI schema (schemathesis).

Every operation the server publishes at ``/openapi.json`` is fuzzed with
schema-valid and schema-violating requests (schemathesis' examples, coverage
and fuzzing phases) against the real ASGI application, made by
:func:`edgeward.server.runner.prepare` as ``edgeward server run`` makes it: a
migrated database, the platform admin bootstrapped, their token in
``<data>/admin-token``. Both SQLite and PostgreSQL. Operator routes get that
token as ``Authorization: Bearer`` on every request. The checks:

* no answer is a server error (no 5xx, no exception escaping the app);
* bodies conform to the response schemas the server publishes;
* a malformed request (negative generation) is refused with a 4xx;
* every 4xx body is JSON ``{"error": "<one printable line>"}``.

Routing misses too: a path no route matches, or a method the route does not
take, is answered ``{"error": "Not Found"}`` / ``{"error": "Method Not
Allowed"}`` by the server's one HTTP-error handler.

Gateway routes want the gateway's factory certificate over mutual TLS, which
an in-process ASGI client cannot present: there every request, well-formed or
not, must be refused with 401 naming the missing certificate, before its body
is even read. That refusal opens no database, so gateway routes are fuzzed with a
quarter of the examples, without the coverage phase, on SQLite only.

Regression tests below pin what the first fuzzing found (a body that is not
UTF-8, a gateway body judged before the certificate was asked for, a NUL in a
token prefix reaching PostgreSQL); the fuzz now tolerates none of them.

Bounded: ``MAX_EXAMPLES`` per operation, no deadline, no example database.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
)

from edgeward.server.app import create_app
from edgeward.server.db.engine import Database
from edgeward.server.runner import Settings, prepare
from edgeward.server.services.registry import Trust
from edgeward.server.state import ServerState
from edgeward.trust.quote import KnownGood

MAX_EXAMPLES = int(os.environ.get("EDGEWARD_FUZZ_EXAMPLES", "40"))  # more for a deep run
GATEWAY_PREFIX = "/v1/gateway/"
# One server per operation and backend, on purpose: its database accumulates what the
# examples create, as a long-running server's would (hence function_scoped_fixture).
FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
# Gateway routes refuse a request without a client certificate before its body is read or
# the database is opened, so what the examples hold matters little: fewer of them, on one
# database (the 401 is the same on both).
GATEWAY_FUZZ = settings(FUZZ, max_examples=max(1, MAX_EXAMPLES // 4))
NO_DATABASE_REACHED = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)



def _schema_only_app() -> FastAPI:
    """The app, only to read its OpenAPI document and routes: it never opens this database."""
    return create_app(ServerState(Database("sqlite://"), Trust(()), KnownGood()))


SCHEMA_APP = _schema_only_app()
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", SCHEMA_APP)


def _is_gateway_route(ctx: Any) -> bool:
    return str(ctx.operation.path).startswith(GATEWAY_PREFIX)


OPERATOR_API = SCHEMA.exclude(func=_is_gateway_route)
# Without the coverage phase's boundary cases (made when the tests are collected: most of
# this module's collection time), which the certificate check refuses unread like any other.
GATEWAY_API = schemathesis.openapi.from_asgi(
    "/openapi.json", SCHEMA_APP,
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}),
).include(func=_is_gateway_route)


@dataclass
class Server:
    app: FastAPI
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """The real app over a migrated database, with the bootstrapped platform admin's token."""
    data = tmp_path / "server"
    state, config = prepare(Settings(data, database_url), dt.datetime.now(dt.UTC))
    try:
        yield Server(config.app, (data / "admin-token").read_text().strip())
    finally:
        state.db.close()


def assert_error_line(response: Response) -> None:
    """A 4xx with JSON ``{"error": "<one non-empty printable line>"}``."""
    assert 400 <= response.status_code < 500, f"not a 4xx: {response.status_code}"
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content!r}"
                             ) from e
    assert isinstance(body, dict) and set(body) == {"error"}, (
        f"{response.status_code} body is not {{'error': ...}}: {body!r}")
    message = body["error"]
    assert isinstance(message, str) and message.strip(), f"empty error: {body!r}"
    assert message.isprintable(), f"error is not one printable line: {message!r}"


def error_body_is_one_line(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx body, routing misses included, is ``{"error": "<one line>"}``."""
    if not 400 <= response.status_code < 500:
        return None
    assert_error_line(response)
    return True


CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection,
          error_body_is_one_line]


@OPERATOR_API.parametrize()
@FUZZ
def test_operator_routes_never_fail_and_refuse_clearly(case: Case, server: Server) -> None:
    case.call_and_validate(app=server.app, headers=server.headers, checks=CHECKS)


@GATEWAY_API.parametrize()
@NO_DATABASE_REACHED
@GATEWAY_FUZZ
def test_gateway_routes_without_a_client_certificate_are_401(case: Case,
                                                            server: Server) -> None:
    response = case.call(app=server.app)
    case.validate_response(response, checks=CHECKS)
    # asked before the body is read, or even the method: no credentials, nothing learnt
    assert response.status_code == 401, response.text
    assert "factory certificate" in response.json()["error"], response.text


def test_the_fuzzed_schema_is_the_one_the_server_serves(server: Server) -> None:
    with TestClient(server.app) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == SCHEMA.raw_schema
    assert any(path.startswith(GATEWAY_PREFIX) for path in SCHEMA.raw_schema["paths"])


def test_routing_misses_answer_an_error_line_too(server: Server) -> None:
    with TestClient(server.app, headers=server.headers) as client:
        unrouted = client.get("/v1/gateways/a/b/c")
        wrong_method = client.put("/v1/tenants")
        routed = client.get("/v1/gateways/no-such-gateway")
    assert unrouted.status_code == 404 and unrouted.json() == {"error": "Not Found"}
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "Method Not Allowed"}
    assert routed.status_code == 404 and "no gateway" in routed.json()["error"]


def test_a_body_that_is_not_utf8_gets_an_error_line(server: Server) -> None:
    with TestClient(server.app, headers=server.headers) as client:
        response = client.post("/v1/tenants", content=b'{"name": "\xff"}',
                               headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert_error_line(Response.from_any(response))


def test_gateway_routes_ask_for_the_certificate_before_reading_the_body(
        server: Server) -> None:
    with TestClient(server.app) as client:
        response = client.post("/v1/gateway/heartbeat", json={"slot": "c", "versions": {}})
    assert response.status_code == 401, response.text
    assert "factory certificate" in response.json()["error"]


def test_a_nul_in_a_token_prefix_is_refused_not_a_server_error(server: Server) -> None:
    with TestClient(server.app, headers=server.headers) as client:
        response = client.delete("/v1/tokens/0%00")
    assert response.status_code == 422, response.text
    assert_error_line(Response.from_any(response))
