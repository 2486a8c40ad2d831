"""The fleet server over real HTTPS: gateways by factory certificate, operators by token.

Each test starts the server on 127.0.0.1 (a free port) on SQLite and on a
throwaway PostgreSQL, with the test factory's CA trusted.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from edgeward.board.virtual import VirtualBoard
from edgeward.device import attest, identity
from edgeward.factory import station
from edgeward.factory.provision import provision
from edgeward.factory.station import Factory
from edgeward.server.db.models import Tenant, User
from edgeward.server.services import tokens
from tests.conftest import NOW
from tests.server.harness import Fleet, attest_once


def test_health_and_metrics_over_https(fleet: Fleet) -> None:
    with fleet.operator(None) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        client.get("/v1/gateways")
        assert "edgeward_http_requests_total" in client.get("/metrics").text


def test_enrol_attest_heartbeat_and_see_it_as_an_operator(fleet: Fleet) -> None:
    first = fleet.enrol("gw-1")
    assert first.status_code == 200, first.text
    assert first.json()["serial"] == "gw-1"
    assert fleet.enrol("gw-1").status_code == 200  # idempotent
    assert attest_once(fleet, "gw-1") == {"verdict": "attested", "reason": None}
    with fleet.gateway("gw-1") as client:
        beat = client.post("/v1/gateway/heartbeat", json={
            "slot": "a", "boot_id": "ab" * 16,
            "versions": {"bl2": "1.0.0", "kernel": "1.0.0", "rootfs": "1.0.0"}})
        assert beat.status_code == 200, beat.text
    with fleet.admin() as admin:
        assert admin.post("/v1/tenants", json={"name": "hotels"}).status_code == 201
        assert admin.post("/v1/gateways/gw-1/assign", json={"tenant": "hotels"}).is_success
        admin.post("/v1/users", json={"name": "ops", "role": "admin", "tenant": "hotels"})
        # a platform admin sees no tenant's fleet
        assert admin.get("/v1/gateways").json() == []
    token = _tenant_token(fleet, "hotels", "ops")
    with fleet.operator(token) as ops:
        listed = ops.get("/v1/gateways").json()
        assert [g["serial"] for g in listed] == ["gw-1"]
        assert listed[0]["attestation"] == "attested" and listed[0]["slot"] == "a"
        assert listed[0]["versions"]["kernel"] == "1.0.0"


def _tenant_token(fleet: Fleet, tenant: str, user: str) -> str:
    """A token for a tenant's user, issued as the platform would hand it over."""
    with fleet.server.state.db.transaction() as session:
        row = session.execute(select(User).join(Tenant, User.tenant_id == Tenant.id).where(
            Tenant.name == tenant, User.name == user)).scalar_one()
        return tokens.issue(session, row.id, NOW)


def test_no_or_foreign_client_certificate_is_refused(fleet: Fleet, factory: Factory,
                                                     tmp_path: Path) -> None:
    with fleet.operator(None) as client:
        refused = client.post("/v1/gateway/nonce")
        assert refused.status_code == 401 and "factory certificate" in refused.json()["error"]
    # a gateway from another manufacturer: the TLS handshake itself refuses its certificate
    foreign_factory = station.init(tmp_path / "foreign", "ew-gw1", "Foreign", "1.0.0", 1,
                                   None, NOW)
    provision(foreign_factory, tmp_path / "intruder", "gw-1", None, NOW)
    fleet.boards["intruder"] = VirtualBoard.open(tmp_path / "intruder")
    with (pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, ssl.SSLError)),
          fleet.gateway("intruder") as client):
        client.post("/v1/gateway/nonce")


def test_unknown_revoked_and_cloned_identities(fleet: Fleet) -> None:
    with fleet.gateway("gw-2") as client:
        unknown = client.post("/v1/gateway/nonce")
        assert unknown.status_code == 401 and "enrol" in unknown.json()["error"]
    assert fleet.enrol("gw-1").is_success
    with fleet.admin() as admin:
        admin.post("/v1/tenants", json={"name": "t1"})
        admin.post("/v1/gateways/gw-1/assign", json={"tenant": "t1"})
        admin.post("/v1/users", json={"name": "boss", "role": "admin", "tenant": "t1"})
    with fleet.operator(_tenant_token(fleet, "t1", "boss")) as boss:
        assert boss.post("/v1/gateways/gw-1/revoke").is_success
        assert any(e["action"] == "gateway.revoke" for e in boss.get("/v1/audit").json())
    with fleet.gateway("gw-1") as client:
        revoked = client.post("/v1/gateway/heartbeat",
                              json={"slot": "a", "boot_id": "ab" * 16, "versions": {}})
        assert revoked.status_code == 403 and "revoked" in revoked.json()["error"]
    # gw-2 presenting gw-1's manufacturing record: refused, nothing enrolled
    with fleet.gateway("gw-2") as client:
        forged = client.post("/v1/gateway/enrol", json={
            "record": identity.record_path(fleet.boards["gw-1"]).read_text(),
            "station_certificate": (fleet.factory.root / "station.pem").read_text()})
        assert forged.status_code == 400 and "another gateway" in forged.json()["error"]


def test_a_quote_for_the_wrong_nonce_is_recorded_as_failed(fleet: Fleet) -> None:
    assert fleet.enrol("gw-1").is_success
    with fleet.gateway("gw-1") as client:
        nonce = client.post("/v1/gateway/nonce").json()["nonce"]
        _, quote = attest.quote(fleet.boards["gw-1"], bytes(32))  # not the issued nonce
        verdict = client.post("/v1/gateway/quote",
                              json={"nonce": nonce, "quote": quote.decode()}).json()
        assert verdict["verdict"] == "failed" and "nonce" in verdict["reason"]
        replay = client.post("/v1/gateway/quote",
                             json={"nonce": nonce, "quote": quote.decode()}).json()
        assert replay["verdict"] == "failed" and "unknown nonce" in replay["reason"]


def test_tokens_and_roles_over_http(fleet: Fleet) -> None:
    with fleet.operator(None) as anonymous:
        assert anonymous.get("/v1/gateways").status_code == 401
    with fleet.operator("ewt_forged") as forged:
        assert forged.get("/v1/gateways").status_code == 401
    with fleet.admin() as admin:
        admin.post("/v1/tenants", json={"name": "a"})
        admin.post("/v1/tenants", json={"name": "b"})
        admin.post("/v1/users", json={"name": "va", "role": "viewer", "tenant": "a"})
        admin.post("/v1/users", json={"name": "ab", "role": "admin", "tenant": "b"})
        fleet.enrol("gw-1")
        admin.post("/v1/gateways/gw-1/assign", json={"tenant": "a"})
    with fleet.operator(_tenant_token(fleet, "a", "va")) as viewer:
        assert viewer.get("/v1/gateways/gw-1").is_success
        denied = viewer.post("/v1/gateways/gw-1/revoke")
        assert denied.status_code == 403 and "may not gateway:revoke" in denied.json()["error"]
        assert viewer.post("/v1/users", json={"name": "x", "role": "admin"}).status_code == 403
    with fleet.operator(_tenant_token(fleet, "b", "ab")) as other:
        assert other.get("/v1/gateways/gw-1").status_code == 404  # not even its existence
        assert other.post("/v1/gateways/gw-1/revoke").status_code == 404
        assert other.get("/v1/gateways").json() == []


def test_malformed_requests_get_a_clear_4xx_and_change_nothing(fleet: Fleet) -> None:
    with fleet.admin() as admin:
        cases = [
            admin.post("/v1/tenants", json={"name": "Bad Name"}),
            admin.post("/v1/tenants", json={"name": "ok", "extra": 1}),
            admin.post("/v1/tenants", content=b"{not json", headers={
                "content-type": "application/json"}),
            admin.post("/v1/users", json={"name": "u", "role": "god"}),
            admin.get("/v1/gateways/" + "x" * 200),
        ]
        for response in cases:
            assert 400 <= response.status_code < 500, response.text
            body = response.json()
            assert body["error"].startswith("invalid request") or body.get("detail")
        assert admin.get("/v1/audit").json() == []
    with fleet.gateway("gw-1") as client:
        bad = client.post("/v1/gateway/heartbeat", json={"slot": "c", "versions": {}})
        assert bad.status_code in (401, 422)


def test_one_certificate_on_two_running_devices_raises_an_alert(fleet: Fleet) -> None:
    assert fleet.enrol("gw-1").is_success
    with fleet.admin() as admin:
        admin.post("/v1/tenants", json={"name": "t"})
        admin.post("/v1/gateways/gw-1/assign", json={"tenant": "t"})
        admin.post("/v1/users", json={"name": "v", "role": "viewer", "tenant": "t"})
        token = admin.post("/v1/tokens", json={"user": "v", "tenant": "t"}).json()["token"]

    def beat(boot_id: str) -> None:
        with fleet.gateway("gw-1") as client:
            assert client.post("/v1/gateway/heartbeat", json={
                "slot": "a", "boot_id": boot_id, "versions": {}}).is_success

    for boot_id in ("01" * 16, "01" * 16, "02" * 16):  # one device, rebooted: no alert
        beat(boot_id)
    with fleet.operator(token) as viewer:
        assert viewer.get("/v1/alerts").json() == []
    for boot_id in ("01" * 16, "02" * 16, "01" * 16, "02" * 16):  # two devices alternate
        beat(boot_id)
    with fleet.operator(token) as viewer:
        raised = viewer.get("/v1/alerts").json()
    assert len(raised) == 1  # one alert, not a flood
    assert raised[0]["kind"] == "cloned-identity" and raised[0]["gateway"] == "gw-1"
