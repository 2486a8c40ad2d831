"""HTTPS calls to the fleet server, for the gateway agent and the operator CLI.

The server answers errors as ``{"error": message}``; this turns each status
back into the matching :class:`edgeward.errors.Error`, and a server that does
not answer into :class:`Unreachable`, so callers handle one exception tree.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from edgeward import errors

ERRORS: dict[int, type[errors.Error]] = {
    400: errors.InputError, 401: errors.AuthenticationError, 403: errors.PermissionDenied,
    404: errors.NotFound, 409: errors.Conflict, 422: errors.InputError,
}


def tls_context(server_ca: str, cert: str | None = None, key: str | None = None
                ) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=server_ca)
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise errors.InputError(f"TLS setup failed: {e}") from e
    return context


RETRY_AFTER = (1.0, 300.0)  # a Retry-After is believed within these bounds (seconds)


def retry_after(header: str | None) -> float:
    """A Retry-After in seconds, bounded (a missing or HTTP-date one: the least)."""
    try:
        seconds = float(header) if header is not None else RETRY_AFTER[0]
    except ValueError:
        seconds = RETRY_AFTER[0]
    if seconds != seconds:  # NaN
        seconds = RETRY_AFTER[0]
    return min(RETRY_AFTER[1], max(RETRY_AFTER[0], seconds))


class ApiClient:
    def __init__(self, base_url: str, context: ssl.SSLContext, token: str | None = None,
                 timeout: float = 10.0) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, verify=context, headers=headers,
                                  timeout=timeout)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send(method, path, json=body).json()

    def get_bytes(self, path: str) -> bytes:
        return self._send("GET", path).content

    def put_bytes(self, path: str, data: bytes) -> Any:
        return self._send("PUT", path, content=data,
                          headers={"content-type": "application/json"}).json()

    def upload(self, path: str, source: Path, progress: Callable[[int], None] | None = None,
               ) -> Any:
        """PUT a file, streamed (with its length), reporting bytes sent."""
        size = source.stat().st_size

        def chunks() -> Iterator[bytes]:
            with source.open("rb") as f:
                while block := f.read(1 << 20):
                    if progress is not None:
                        progress(len(block))
                    yield block

        return self._send("PUT", path, content=chunks(), timeout=None, headers={
            "content-length": str(size), "content-type": "application/octet-stream"}).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise errors.Unreachable(f"fleet server {self.base_url} unreachable: "
                                     f"{type(e).__name__}: {e}") from e
        if response.is_success:
            return response
        try:
            message = str(response.json().get("error") or response.text)
        except ValueError:
            message = response.text[:200]
        if response.status_code == 429:  # taken no more of now: back after Retry-After
            raise errors.Throttled(f"server: {message} (HTTP 429)",
                                   retry_after(response.headers.get("retry-after")))
        if response.status_code >= 500:
            # the server is there but cannot serve now: as retryable as a server away
            raise errors.Unreachable(f"server busy or failing: {message} "
                                     f"(HTTP {response.status_code})")
        kind = ERRORS.get(response.status_code, errors.ToolError)
        raise kind(f"server: {message} (HTTP {response.status_code})")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
