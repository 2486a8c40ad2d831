"""Regression tests for the server review: pools, conflicts, CSRF, limits, trust files."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeward.board.virtual import VirtualBoard
from edgeward.factory import station
from edgeward.factory.provision import provision
from edgeward.server.runner import _collect
from tests.conftest import NOW
from tests.server.harness import Fleet


def test_the_platform_sees_and_acts_on_unassigned_gateways(fleet: Fleet) -> None:
    assert fleet.enrol("gw-1").is_success

    def beat(boot_id: str) -> None:
        with fleet.gateway("gw-1") as client:
            assert client.post("/v1/gateway/heartbeat", json={
                "slot": "a", "boot_id": boot_id, "versions": {}}).is_success

    for boot_id in ("01" * 16, "02" * 16, "01" * 16):  # a clone, before any assignment
        beat(boot_id)
    with fleet.admin() as admin:
        assert [g["serial"] for g in admin.get("/v1/gateways").json()] == ["gw-1"]
        assert [a["kind"] for a in admin.get("/v1/alerts").json()] == ["cloned-identity"]
        assert "gateway.enrol" in {e["action"] for e in admin.get("/v1/audit").json()}
        admin.post("/v1/tenants", json={"name": "t"})
        admin.post("/v1/users", json={"name": "boss", "role": "admin", "tenant": "t"})
        token = admin.post("/v1/tokens", json={"user": "boss", "tenant": "t"}).json()["token"]
        admin.post("/v1/gateways/gw-1/assign", json={"tenant": "t"})
        assert admin.get("/v1/gateways").json() == []  # no longer in the pool
    with fleet.operator(token) as boss:  # the alert went with the gateway
        assert [a["kind"] for a in boss.get("/v1/alerts").json()] == ["cloned-identity"]
        # naming one's own tenant needs no platform rights
        made = boss.post("/v1/users", json={"name": "x", "role": "viewer", "tenant": "t"})
        assert made.status_code == 201, made.text


def test_an_identity_conflict_is_kept_in_audit_and_alerts(fleet: Fleet, factory: station.Factory,
                                                          tmp_path: Path) -> None:
    assert fleet.enrol("gw-1").is_success
    twin = tmp_path / "twin-factory"  # same CA, so its second gw-1 passes the handshake
    shutil.copytree(factory.root, twin)
    (twin / "records" / "gw-1.json").unlink()
    provision(station.open_factory(twin), tmp_path / "twin", "gw-1", None, NOW)
    fleet.boards["twin"] = VirtualBoard.open(tmp_path / "twin")
    refused = fleet.enrol("twin")
    assert refused.status_code == 409 and "another certificate" in refused.json()["error"]
    with fleet.admin() as admin:
        assert "gateway.identity-conflict" in {e["action"] for e in
                                                admin.get("/v1/audit").json()}
        assert "identity-conflict" in {a["kind"] for a in admin.get("/v1/alerts").json()}


def test_login_from_another_site_is_refused(fleet: Fleet) -> None:
    token = (fleet.server.settings.data / "admin-token").read_text()
    with fleet.operator(None) as client:
        forged = client.post("/login", data={"token": token},
                             headers={"origin": "https://evil.example"})
        assert forged.status_code == 403 and "ew_session" not in forged.cookies
        fine = client.post("/login", data={"token": token},
                           headers={"origin": fleet.server.url})
        assert fine.status_code == 303


def test_credentials_and_size_are_checked_before_the_body(fleet: Fleet) -> None:
    with fleet.operator("ewt_forged-token") as forged:
        bad = forged.post("/v1/tenants", content=b"{not json",
                          headers={"content-type": "application/json"})
        assert bad.status_code == 401  # not a 422 that would describe the schema
    with fleet.admin() as admin:
        huge = admin.post("/v1/tenants", content=b"x" * (300 * 1024),
                          headers={"content-type": "application/json"})
        assert huge.status_code == 413
        ok = admin.get("/v1/gateways")
        assert ok.headers["strict-transport-security"].startswith("max-age=")
        assert ok.headers["cache-control"] == "no-store"


def test_two_manufacturers_ca_pem_are_both_kept(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "ca.pem").write_text(f"CA of {name}\n")
        files.append(folder / "ca.pem")
    kept = _collect(tmp_path / "manufacturers", tuple(files), ".pem")
    assert sorted(p.read_text() for p in kept) == ["CA of a\n", "CA of b\n"]
    assert _collect(tmp_path / "manufacturers", tuple(files), ".pem") == kept  # idempotent


def test_server_certificate_names_what_gateways_dial(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509

    from edgeward.server import identity

    now = dt.datetime.now(dt.UTC)
    first = identity.ensure(tmp_path, ["fleet.example.com", "localhost"], now)
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in sans} == {"fleet.example.com", "localhost"}
    ca_before = first.ca.read_bytes()
    assert identity.ensure(tmp_path, ["localhost"], now).ca.read_bytes() == ca_before  # kept
    identity.ensure(tmp_path, ["fleet.example.com", "10.0.0.5"], now)  # a new name: re-issued
    again = x509.load_pem_x509_certificate(first.cert.read_bytes())
    sans = again.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.0.0.5" in {str(n.value) for n in sans}
