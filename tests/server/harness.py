"""Helpers for tests that talk to a real fleet server over HTTPS."""

from __future__ import annotations

import os
import socket
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device import attest, identity, keyring
from edgeward.factory.station import Factory
from edgeward.server.runner import Running

# For tests of the CLI and the dashboard, which run as processes or in a browser: one
# database, since what differs between the two is tested through the API on both.
ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Fleet:
    server: Running
    factory: Factory
    boards: dict[str, VirtualBoard]
    tmp: Path

    @property
    def ca(self) -> str:
        return str(self.server.settings.data / "tls" / "server-ca.pem")

    def admin(self) -> httpx.Client:
        token = (self.server.settings.data / "admin-token").read_text()
        return self.operator(token)

    def operator(self, token: str | None) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers,
                            verify=ssl.create_default_context(cafile=self.ca))

    def gateway(self, serial: str) -> httpx.Client:
        board = self.boards[serial]
        # a file of its own per client: two threads' clients must not share a half-written one
        key = self.tmp / f"{serial}-{uuid.uuid4().hex}.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(keyring.recall(board, keyring.IDENTITY) or b"")
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(identity.cert_path(board), key)
        return httpx.Client(base_url=self.server.url, verify=context)

    def enrol(self, serial: str) -> httpx.Response:
        board = self.boards[serial]
        with self.gateway(serial) as client:
            return client.post("/v1/gateway/enrol", json={
                "record": identity.record_path(board).read_text(),
                "station_certificate": (self.factory.root / "station.pem").read_text()})


def attest_once(fleet: Fleet, serial: str) -> dict[str, object]:
    with fleet.gateway(serial) as client:
        nonce = client.post("/v1/gateway/nonce").json()["nonce"]
        _, quote = attest.quote(fleet.boards[serial], bytes.fromhex(nonce))
        answer: dict[str, object] = client.post(
            "/v1/gateway/quote", json={"nonce": nonce, "quote": quote.decode()}).json()
        return answer


