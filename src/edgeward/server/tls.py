"""HTTPS with optional client certificates, and the ASGI TLS extension.

Gateways present their factory certificate (mutual TLS); operators come over
plain server-authenticated HTTPS with a token. The handshake accepts a client
certificate only if it chains to a manufacturer CA the server trusts.

uvicorn (pinned) does not yet fill the ASGI TLS extension
(``scope["extensions"]["tls"]``), so :class:`TLSExtensionProtocol` provides it:
a subclass of uvicorn's h11 protocol, handed to uvicorn through its public
``http=`` option (no patching), that wraps the app of each connection so its
requests carry the connection's client certificate, as the extension
specifies. The application reads only the standard extension, so a server
that implements it natively needs no change here.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

ASGIApp = Any


def tls_info(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


def _with_tls(app: ASGIApp, tls: dict[str, Any]) -> ASGIApp:
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "extensions": {**scope.get("extensions", {}), "tls": tls}}
        await app(scope, receive, send)

    return wrapped


class TLSExtensionProtocol(H11Protocol):
    """uvicorn's h11 protocol, with the ASGI TLS extension in every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tls = tls_info(transport)
        if tls is not None:
            self.app = _with_tls(self.app, tls)


def client_certificate(scope: MutableMapping[str, Any]) -> str | None:
    """The PEM client certificate of a request, if its connection presented one."""
    chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return str(chain[0]) if chain else None
