"""Where alert hooks may reach (request forgery). Without the operator's leave, a hook
reaches only the public internet. This holds as the URL is written (an address, or
``localhost``) and as its name resolves when an alert is posted. The post goes to the
address that was judged, with the name kept for TLS and Host. Receivers here are real
HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgeward.errors import InputError, NotAvailable
from edgeward.server import identity
from edgeward.server.services import alerthooks, hookreach, hookworker
from tests.server.alerting import Receiver, raise_alert, wait_for
from tests.server.harness import Fleet, free_port
from tests.server.test_alert_hooks import hook_state, quick, set_hook
from tests.server.test_updates_api import prepare

INSIDE = ["http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]:8080/x",
          "https://10.0.0.5/hook", "https://192.168.1.2/", "https://172.16.0.1/",
          "https://169.254.169.254/latest/meta-data/", "https://[fd00::1]/",
          "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://100.64.0.1/"]


@pytest.mark.parametrize("url", INSIDE)
def test_an_address_inside_is_refused_unless_its_network_is_allowed(url: str) -> None:
    with pytest.raises(InputError) as refused:
        alerthooks.check_url(url)
    assert "not on the public internet" in refused.value.message
    assert "--hook-network" in refused.value.message
    everything = hookreach.networks(["0.0.0.0/0", "::/0"])
    assert alerthooks.check_url(url, everything) == url


def test_an_allowed_network_lets_in_that_network_only() -> None:
    siem = hookreach.networks(["10.20.0.0/16"])
    assert alerthooks.check_url("https://10.20.3.4/hook", siem)
    with pytest.raises(InputError):
        alerthooks.check_url("https://10.21.0.1/hook", siem)
    assert alerthooks.check_url("https://93.184.216.34/hook") == "https://93.184.216.34/hook"
    assert alerthooks.check_url("https://siem.example/hook")  # a name: judged when posted


@pytest.mark.parametrize("text", ["ten-dot", "10.0.0.0/33", "", "::1/200"])
def test_a_bad_network_is_refused(text: str) -> None:
    with pytest.raises(InputError) as refused:
        hookreach.networks([text])
    assert "--hook-network" in refused.value.message


def test_the_server_refuses_a_bad_hook_network_before_it_makes_anything(tmp_path: Path
                                                                        ) -> None:
    data = tmp_path / "data"
    result = subprocess.run([sys.executable, "-m", "edgeward", "server", "run", "--data",
                             str(data), "--listen", f"127.0.0.1:{free_port()}",
                             "--hook-network", "10.0.0.0/99"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "--hook-network '10.0.0.0/99'" in result.stderr
    assert not data.exists()


def test_names_are_judged_by_every_address_they_resolve_to() -> None:
    with pytest.raises(NotAvailable) as refused:
        hookreach.resolve("localhost", 443, ())
    assert "resolves to" in refused.value.message and "not posted" in refused.value.message
    with pytest.raises(NotAvailable):  # 127.1 is no address literal, but resolves to one
        hookreach.resolve("127.1", 443, ())
    assert hookreach.resolve("127.1", 443, hookreach.LOOPBACK) == "127.0.0.1"
    assert ipaddress.ip_address(hookreach.resolve("localhost", 443, hookreach.LOOPBACK)
                                ).is_loopback


def tls_receiver(where: Path, name: str) -> tuple[Receiver, str]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names ``name``, and its CA."""
    tls = identity.ensure(where, [name], dt.datetime.now(dt.UTC))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.cert), str(tls.key))
    return Receiver(tls=context), str(tls.ca)


def port_of(receiver: Receiver) -> int:
    return int(receiver.http.server_address[1])


@pytest.fixture
def client_trusting(tmp_path: Path) -> Iterator[tuple[Receiver, httpx.Client]]:
    receiver, ca = tls_receiver(tmp_path / "receiver", "localhost")
    with receiver, httpx.Client(timeout=5,
                                verify=ssl.create_default_context(cafile=ca)) as client:
        yield receiver, client


def delivery(url: str) -> alerthooks.Delivery:
    return alerthooks.Delivery(1, url, 7, dt.datetime.now(dt.UTC), b"{}", "sha256=00")


def test_a_post_goes_to_the_judged_address_with_the_name_for_tls_and_host(
        client_trusting: tuple[Receiver, httpx.Client]) -> None:
    receiver, client = client_trusting
    url = f"https://localhost:{port_of(receiver)}/hook"
    assert hookworker.post(client, delivery(url), hookreach.LOOPBACK) is None
    (headers, _), = receiver.received
    assert headers["host"] == f"localhost:{port_of(receiver)}"
    assert headers["x-edgeward-delivery"] == "7"


def test_a_certificate_for_another_name_is_refused(
        client_trusting: tuple[Receiver, httpx.Client]) -> None:
    receiver, client = client_trusting  # its certificate names localhost, not 127.0.0.1
    error = hookworker.post(client, delivery(f"https://127.0.0.1:{port_of(receiver)}/hook"),
                            hookreach.LOOPBACK)
    assert error is not None and "certificate" in error.lower(), error
    assert receiver.received == []


def test_a_post_to_a_name_inside_is_not_sent(
        client_trusting: tuple[Receiver, httpx.Client]) -> None:
    receiver, client = client_trusting
    error = hookworker.post(client, delivery(f"https://localhost:{port_of(receiver)}/hook"))
    assert error is not None and "not on the public internet: not posted" in error
    assert receiver.received == []


def test_a_server_that_allows_no_inside_network_never_posts_there(fleet: Fleet) -> None:
    """The server as ``edgeward server run`` starts it without ``--hook-network``."""
    fleet.server.state.hook_networks = fleet.server.hooks.networks = ()
    quick(fleet)
    setup = prepare(fleet, enrol=("gw-1",))
    with Receiver() as receiver:
        with setup.as_("hotels/ops") as admin:
            refused = admin.put("/v1/alert-hook", json={"url": receiver.url})
        assert refused.status_code == 400
        assert "not on the public internet" in refused.json()["error"]
        port = receiver.http.server_address[1]
        set_hook(setup, "hotels/ops", f"https://127.1:{port}/hook")  # a name, when set
        raise_alert(fleet, "gw-1", "beacon")
        failed = wait_for(lambda: (s := hook_state(setup, "hotels/ops"))["failed"] and s,
                          "the refused delivery")
        assert "resolves to 127.0.0.1" in failed["last_error"]
        assert failed["delivered"] == 0 and receiver.received == []


def test_a_name_that_resolves_elsewhere_after_the_check_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the resolver (the seam faked here) answers loopback for the check
    and a private address after it; the post still goes to the address judged."""
    real, asked = socket.getaddrinfo, []

    def rebinding(host: str, port: object, *args: object, **kwargs: object) -> object:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        asked.append(host)
        address = "127.0.0.1" if len(asked) == 1 else "10.9.9.9"
        return real(address, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    receiver, ca = tls_receiver(tmp_path / "receiver", "rebind.test")
    with receiver, httpx.Client(timeout=5,
                                verify=ssl.create_default_context(cafile=ca)) as client:
        url = f"https://rebind.test:{port_of(receiver)}/hook"
        assert hookworker.post(client, delivery(url), hookreach.LOOPBACK) is None
        assert hookworker.post(client, delivery(url), hookreach.LOOPBACK) is not None
    assert len(receiver.received) == 1  # the second check saw 10.9.9.9: not posted
    assert receiver.received[0][0]["host"] == f"rebind.test:{port_of(receiver)}"
    assert asked == ["rebind.test", "rebind.test"]  # once per post: the check's own
