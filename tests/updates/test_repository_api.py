"""The repository over HTTPS: who may upload what, uploads checked, gateways fetch."""

from __future__ import annotations

import hashlib
import os
import ssl

import httpx
import pytest

from edgeward.errors import NotFound, PermissionDenied
from tests.updates.conftest import World


def _token(world: World, tenant: str, user: str, role: str) -> str:
    with world.admin() as client:
        if tenant != "platform":
            client.call("POST", "/v1/tenants", {"name": tenant})
        client.call("POST", "/v1/users", {"name": user, "role": role, "tenant": tenant})
        return str(client.call("POST", "/v1/tokens", {"user": user, "tenant": tenant})["token"])


def _http(world: World, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=world.server.url, headers=headers,
                        verify=ssl.create_default_context(cafile=str(world.ca)))


def test_blob_upload_is_kept_only_if_it_hashes_to_its_name(world: World) -> None:
    data = os.urandom(600 * 1024)  # above the 256 KiB cap of ordinary requests
    digest = hashlib.sha384(data).hexdigest()
    token = (world.server.settings.data / "admin-token").read_text()
    with _http(world, token) as http:
        wrong = http.put(f"/v1/repository/blobs/{'0' * 96}", content=data)
        assert wrong.status_code == 400 and "does not hash" in wrong.json()["error"]
        ok = http.put(f"/v1/repository/blobs/{digest}", content=data)
        assert ok.status_code == 200 and ok.json()["stored"] is True
        again = http.put(f"/v1/repository/blobs/{digest}", content=data)
        assert again.json()["stored"] is False
    blobs = world.server.settings.data / "tuf" / "blobs"
    assert sorted(p.name for p in blobs.iterdir()) == [digest]  # no temporaries left
    assert (blobs / digest).read_bytes() == data


def test_only_the_platform_publishes_os_and_a_tenant_only_its_own_role(world: World) -> None:
    viewer = _token(world, "platform", "watcher", "viewer")
    tenant_admin = _token(world, "acme", "boss", "admin")
    body = (world.server.settings.data / "tuf" / "metadata" / "1.os.json").read_bytes()
    with _http(world, viewer) as http:
        assert http.put("/v1/repository/metadata/os", content=body).status_code == 403
        assert http.put(f"/v1/repository/blobs/{'0' * 96}", content=b"x").status_code == 403
    with _http(world, tenant_admin) as http:
        assert http.put("/v1/repository/metadata/os", content=body).status_code == 403
        refused = http.put("/v1/repository/metadata/apps-other", content=body)
        assert refused.status_code == 403 and "only apps-acme" in refused.json()["error"]
    with _http(world, None) as http:
        assert http.put("/v1/repository/metadata/os", content=body).status_code == 401


def test_gateway_routes_need_an_enrolled_gateway_certificate(world: World) -> None:
    token = (world.server.settings.data / "admin-token").read_text()
    with _http(world, token) as http:  # a token is not a gateway certificate
        assert http.get("/v1/gateway/tuf/metadata/timestamp.json").status_code == 401
    agent = world.gateway("gw-1")
    with agent._client() as client:
        stamp = client.get_bytes("/v1/gateway/tuf/metadata/timestamp.json")
        assert b'"_type":"timestamp"' in stamp
        for sneaky in ("..%2Ffleet.db", "..%2F..%2Fadmin-token", "online%2Ftimestamp.pem"):
            with pytest.raises(NotFound):
                client.get_bytes(f"/v1/gateway/tuf/metadata/{sneaky}")
        with pytest.raises(NotFound, match="no target"):
            client.get_bytes(f"/v1/gateway/tuf/targets/os/ew-gw1/1/{'a' * 96}.kernel.img")


def test_a_revoked_gateway_gets_no_updates(world: World) -> None:
    agent = world.gateway("gw-1")
    with world.admin() as client:
        client.call("POST", "/v1/gateways/gw-1/revoke")
    with agent._client() as client, pytest.raises(PermissionDenied):
        client.get_bytes("/v1/gateway/tuf/metadata/timestamp.json")
