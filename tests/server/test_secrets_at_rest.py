"""Secrets at rest: no value in a database dump (SQLite: the files' bytes and ``.dump``;
PostgreSQL: ``pg_dump``) nor in the server's log output; the master key from a file, the
environment or DATA/master.key, refused when readable by others, and a wrong one stops
the start with one clear line."""

from __future__ import annotations

import base64
import datetime as dt
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from edgeward.board.virtual import VirtualBoard
from edgeward.errors import InputError, KeyFileError
from edgeward.factory.provision import provision
from edgeward.factory.station import Factory
from edgeward.server.db.models import TenantSecret
from edgeward.server.runner import Running, Settings
from edgeward.trust import vault
from tests.conftest import NOW, require_tool
from tests.server.harness import Fleet, free_port
from tests.server.test_secrets_api import Tenants, tenants

VALUES = {"secret": "plain-SECRET-value-7f3a9c", "rotated": "plain-ROTATED-value-51d0e2",
          "revoked": "plain-REVOKED-value-c48b17", "group": "plain-GROUP-value-9e2d44",
          "recovery": "plain-RECOVERY-key-30aa6f", "credential": "plain-CREDENTIAL-pw-b7e915"}


def forms(value: str) -> list[bytes]:
    """The ways a value could show in a dump or a log: as is, hex (bytea), base64."""
    raw = value.encode()
    return [raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw),
            value[5:-7].encode()]


def assert_nowhere(blob: bytes, what: str, extra: Sequence[bytes] = ()) -> None:
    for name, value in VALUES.items():
        for form in forms(value):
            assert form not in blob, f"{name} value found in {what} ({form[:20]!r}...)"
    for secret in extra:
        assert secret not in blob, f"key material found in {what}"


def scenario(t: Tenants) -> None:
    """Every kind of value the server keeps, through every path that handles one."""
    fleet = t.fleet
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 201
        assert ops.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"}).is_success
    t.put("hotels/ops", "minibar", "password", VALUES["secret"])
    t.put("hotels/ops", "minibar", "token", "first-" + VALUES["rotated"])
    t.put("hotels/ops", "minibar", "token", VALUES["rotated"])
    t.put("hotels/ops", "minibar", "token", VALUES["group"], group="lobby")
    t.put("hotels/ops", "hvac", "old", VALUES["revoked"])
    with t.as_("hotels/ops") as ops:
        assert ops.delete("/v1/secrets/hvac/old").is_success
        # malformed requests carrying a value: refused without echoing it
        bad = ops.put("/v1/secrets/minibar/password",
                      json={"value": VALUES["secret"], "unexpected": VALUES["secret"]})
        assert bad.status_code == 422 and VALUES["secret"] not in bad.text
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/recovery-key",
                       json={"recovery_key": VALUES["recovery"]}).is_success
        assert gw.post("/v1/gateway/credentials", json={
            "app": "minibar", "name": "mqtt", "value": VALUES["credential"]}).is_success
        assert len(gw.get("/v1/gateway/secrets").json()["secrets"]) == 2
    with fleet.gateway("gw-2") as gw:  # not attested: refused
        assert gw.get("/v1/gateway/secrets").status_code == 403
    with t.as_("hotels/ops") as ops:
        assert ops.get("/v1/gateways/gw-1/recovery-key").json()["recovery_key"] == \
            VALUES["recovery"]
        assert ops.get("/v1/gateways/gw-1/credentials/minibar/mqtt").json()["value"] == \
            VALUES["credential"]
    with t.as_("hotels/eyes") as eyes:  # refused reveals
        assert eyes.get("/v1/gateways/gw-1/recovery-key").status_code == 403
    assert t.delivered("gw-1") == {"minibar/password": (1, VALUES["secret"]),
                                   "minibar/token": (1, VALUES["group"])}


def sqlite_files(url: str) -> bytes:
    path = Path(str(make_url(url).database))
    blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))  # -wal, -shm
    with sqlite3.connect(path) as connection:
        dump = "\n".join(connection.iterdump()).encode()
    assert b"tenant_secrets" in dump and b"recovery_keys" in dump
    return blob + b"\n" + dump


def pg_dump(url: str) -> bytes:
    parsed = make_url(url)
    dumped = subprocess.run(
        [require_tool("pg_dump"), "-h", str(parsed.host), "-p", str(parsed.port),
         "-U", str(parsed.username), "--no-password", str(parsed.database)],
        capture_output=True, check=True, timeout=120)
    assert b"tenant_secrets" in dumped.stdout and b"COPY public.recovery_keys" in dumped.stdout
    return dumped.stdout


def test_no_value_in_a_database_dump(fleet: Fleet, database_url: str) -> None:
    t = tenants(fleet, attest=("gw-1",))
    scenario(t)
    master = (fleet.server.settings.data / "master.key").read_bytes()
    key = bytes.fromhex(master.decode())
    dump = (sqlite_files(database_url) if database_url.startswith("sqlite")
            else pg_dump(database_url))
    assert b"minibar" in dump and b"lobby" in dump  # the dump holds the rows: names, ...
    assert_nowhere(dump, "the database dump", [key, key.hex().encode(), master.strip()])


# -- the server as a process: its log output --------------------------------------------


@dataclass
class Served:
    """What Fleet needs of a server: its data directory and URL."""

    url: str
    data: Path

    @property
    def settings(self) -> Any:
        return self


def serve(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "edgeward", "server", "run", *args],
                                stdout=out, stderr=subprocess.STDOUT)


def wait_up(process: subprocess.Popen[bytes], url: str, ca: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        if ca.exists():
            try:
                verify = ssl.create_default_context(cafile=str(ca))
                if httpx.get(url + "/healthz", verify=verify, timeout=2).is_success:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise AssertionError("the server did not start:\n" + log.read_text())


def test_no_value_in_the_servers_log(database_url: str, factory: Factory,
                                     tmp_path: Path) -> None:
    boards = {}
    for serial in ("gw-1", "gw-2"):
        provision(factory, tmp_path / serial, serial, None, NOW)
        boards[serial] = VirtualBoard.open(tmp_path / serial)
    key = vault.new_key()
    key_file = tmp_path / "keys" / "master.key"
    key_file.parent.mkdir()
    key_file.write_bytes(key.hex().encode() + b"\n")
    key_file.chmod(0o600)
    port, data, log = free_port(), tmp_path / "server", tmp_path / "server.log"
    url = f"https://127.0.0.1:{port}"
    process = serve(["--db", database_url, "--data", str(data), "--listen", f"127.0.0.1:{port}",
                     "--trust-ca", str(factory.root / "ca.pem"),
                     "--known-good", str(factory.release.known_good),
                     "--master-key", str(key_file)], log)
    try:
        wait_up(process, url, data / "tls" / "server-ca.pem", log)
        fleet = Fleet(Served(url, data), factory, boards, tmp_path)  # type: ignore[arg-type]
        scenario(tenants(fleet, attest=("gw-1",)))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    output = log.read_bytes()
    assert b'"route": "/v1/secrets/{app}/{name}"' in output  # the requests were logged ...
    assert b'"route": "/v1/gateway/secrets"' in output
    assert_nowhere(output, "the server's log", [key, key.hex().encode()])  # ... no value
    assert not (data / "master.key").exists()  # the given key was used, none made


# -- where the master key comes from -----------------------------------------------------


@pytest.fixture
def pool(database_url: str, factory: Factory, tmp_path: Path) -> Iterator[dict[str, Any]]:
    for serial in ("gw-1", "gw-2"):
        provision(factory, tmp_path / serial, serial, None, NOW)
    yield {"db": database_url, "factory": factory, "tmp": tmp_path}


def settings(pool: dict[str, Any], master_key: Path | None = None) -> Settings:
    factory: Factory = pool["factory"]
    return Settings(pool["tmp"] / "server", pool["db"], "127.0.0.1", free_port(),
                    (factory.root / "ca.pem",), (factory.release.known_good,),
                    master_key=master_key)


def key_file(path: Path, key: bytes, mode: int = 0o600, raw: bool = False) -> Path:
    path.write_bytes(key if raw else key.hex().encode() + b"\n")
    path.chmod(mode)
    return path


def set_secret(server: Running, value: str) -> int:
    token = (server.settings.data / "admin-token").read_text()
    ca = str(server.settings.data / "tls" / "server-ca.pem")
    with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=ca),
                      headers={"authorization": f"Bearer {token}"}) as admin:
        answer = admin.put("/v1/secrets/app/name", json={"value": value})
        assert answer.status_code == 200, answer.text
        return int(answer.json()["version"])


def test_a_master_key_made_on_first_start_is_used_after(pool: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.delenv("EDGEWARD_MASTER_KEY", raising=False)
    with Running(settings(pool), dt.datetime.now(dt.UTC)) as server:
        made = server.settings.data / "master.key"
        assert made.stat().st_mode & 0o777 == 0o600
        assert set_secret(server, "v1") == 1
    with Running(settings(pool), dt.datetime.now(dt.UTC)) as server:  # same key, same data
        assert set_secret(server, "v2") == 2
    key = bytes.fromhex(made.read_text())
    made.unlink()  # moved off the data disk, as the docs say ...
    with pytest.raises(KeyFileError, match="was not given"):  # ... and then not given
        Running(settings(pool), dt.datetime.now(dt.UTC))
    assert not made.exists()  # no new key made over the old one's secrets
    elsewhere = key_file(pool["tmp"] / "offline.key", key, raw=True)  # raw bytes do too
    with Running(settings(pool, elsewhere), dt.datetime.now(dt.UTC)) as server:
        assert set_secret(server, "v3") == 3
    monkeypatch.setenv("EDGEWARD_MASTER_KEY", key.hex())
    with Running(settings(pool), dt.datetime.now(dt.UTC)) as server:
        assert set_secret(server, "v4") == 4
    assert not made.exists()


def test_a_wrong_or_exposed_master_key_is_refused(pool: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEWARD_MASTER_KEY", raising=False)
    right = key_file(pool["tmp"] / "right.key", vault.new_key())
    with Running(settings(pool, right), dt.datetime.now(dt.UTC)) as server:
        set_secret(server, "kept")
    wrong = key_file(pool["tmp"] / "wrong.key", vault.new_key())
    with pytest.raises(KeyFileError, match="not the one this database's secrets are "
                                           "encrypted under"):
        Running(settings(pool, wrong), dt.datetime.now(dt.UTC))
    monkeypatch.setenv("EDGEWARD_MASTER_KEY", vault.new_key().hex())
    with pytest.raises(KeyFileError, match="not the one"):
        Running(settings(pool), dt.datetime.now(dt.UTC))
    monkeypatch.setenv("EDGEWARD_MASTER_KEY", "not-hex")
    with pytest.raises(KeyFileError, match="EDGEWARD_MASTER_KEY: a master key is 32 bytes"):
        Running(settings(pool), dt.datetime.now(dt.UTC))
    monkeypatch.delenv("EDGEWARD_MASTER_KEY")
    exposed = key_file(pool["tmp"] / "exposed.key", vault.new_key(), mode=0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        Running(settings(pool, exposed), dt.datetime.now(dt.UTC))
    short = key_file(pool["tmp"] / "short.key", b"\x01" * 16, raw=True)
    with pytest.raises(KeyFileError, match="32 bytes"):
        Running(settings(pool, short), dt.datetime.now(dt.UTC))
    with pytest.raises(InputError, match="does not exist"):
        Running(settings(pool, pool["tmp"] / "missing.key"), dt.datetime.now(dt.UTC))
    # the command line says it in one line, exit code 3, before serving anything
    log = pool["tmp"] / "wrong.log"
    s = settings(pool, wrong)
    process = serve(["--db", pool["db"], "--data", str(s.data), "--listen",
                     f"127.0.0.1:{s.port}", "--master-key", str(wrong)], log)
    assert process.wait(timeout=60) == 3
    lines = log.read_text().strip().splitlines()
    assert lines[-1].startswith("edgeward: error: the master key is not the one"), lines
    assert "Traceback" not in log.read_text()
    with Running(settings(pool, right), dt.datetime.now(dt.UTC)) as server:  # still fine
        assert set_secret(server, "again") == 2


def test_a_value_copied_to_another_row_does_not_decrypt(fleet: Fleet) -> None:
    t = tenants(fleet, assign=("gw-1",))
    with fleet.admin() as admin:
        assert admin.post("/v1/gateways/gw-2/assign", json={"tenant": "other"}).is_success
    t.put("hotels/ops", "minibar", "password", VALUES["secret"])
    t.put("other/ops", "minibar", "password", "the-other-tenants-own")
    t.put("hotels/ops", "minibar", "token", "hotels-token")
    with fleet.server.state.db.transaction() as session:
        rows = {(r.tenant_id, r.name): r for r in session.execute(
            select(TenantSecret)).scalars()}
        hotels, other = sorted({tenant for tenant, _ in rows})
        stolen = rows[(hotels, "password")].ciphertext
        rows[(other, "password")].ciphertext = stolen  # into another tenant's row
        rows[(hotels, "token")].ciphertext = stolen  # into another name's row
    for serial in ("gw-1", "gw-2"):
        with fleet.gateway(serial) as gw:
            answer = gw.get("/v1/gateway/secrets")
        assert answer.status_code == 400, answer.text
        assert "does not decrypt" in answer.json()["error"]
        assert VALUES["secret"] not in answer.text
