"""``edgeward demo``: the whole story so far, on five virtual gateways.

The fleet server starts (SQLite, on 127.0.0.1) and the platform initialises its
TUF repository with offline keys; a factory is set up whose first release ships
that TUF root, and the server is restarted trusting the factory's CA. Five
gateways are provisioned and booted, and their agents enrol and attest; then
one has a byte of its kernel bundle flipped (as someone with a screwdriver and
a flash programmer would): its boot is refused and it can no longer attest.
An operator's view of the fleet is read back from the API; then signed
updates roll out over the healthy gateways (:mod:`edgeward.demo_updates`), and
two apps from two publishers run on one of them, one misbehaving
(:mod:`edgeward.demo_apps`).
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward import demo_apps, demo_monitoring, demo_secrets, demo_updates
from edgeward.api_client import ApiClient, tls_context
from edgeward.board.virtual import VirtualBoard
from edgeward.demo_apps import AppStory
from edgeward.demo_monitoring import MonitorStory
from edgeward.demo_secrets import SecretStory
from edgeward.demo_updates import UpdateStory
from edgeward.device.boot.chain import boot
from edgeward.errors import Error, StateError
from edgeward.factory import station
from edgeward.factory.provision import enrol, provision
from edgeward.files import write_secret
from edgeward.release import publish, workspace
from edgeward.server.runner import Running, Settings

SERIALS = ("gw-0001", "gw-0002", "gw-0003", "gw-0004", "gw-0005")
TAMPERED = "gw-0005"


@dataclass
class GatewayOutcome:
    serial: str
    provisioned: bool = False
    first_boot: str = ""
    attestation: str = ""
    after_tamper: str = ""
    attestation_after: str = ""
    refused_stage: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DemoResult:
    directory: Path
    gateways: list[GatewayOutcome] = field(default_factory=list)
    server: str = ""
    fleet: list[dict[str, object]] = field(default_factory=list)
    operator_token: Path | None = None
    updates: UpdateStory | None = None
    apps: AppStory | None = None
    secrets: SecretStory = field(default_factory=SecretStory)
    monitoring: MonitorStory | None = None

    @property
    def ok(self) -> bool:
        refused = [g for g in self.gateways if g.after_tamper == "refused"]
        return (all(g.first_boot == "booted" and g.attestation == "attested"
                    for g in self.gateways)
                and len(refused) == 1 and refused[0].attestation_after.startswith("cannot")
                and len(self.fleet) == len(self.gateways)
                and self.updates is not None and self.updates.ok
                and self.apps is not None and self.apps.ok and self.secrets.ok
                and self.monitoring is not None and self.monitoring.ok)


def flip_byte(path: Path, offset: int | None = None) -> int:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return at


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(directory: Path, say: Callable[[str], None],
        hold: Callable[[DemoResult], None] | None = None) -> DemoResult:
    """Tell the story; ``hold`` (if given) runs while the server is still up."""
    reachable(directory)
    now = dt.datetime.now(dt.UTC)
    result = DemoResult(directory)
    with Running(Settings(directory / "server", None, "127.0.0.1", _free_port()), now) as first:
        context = tls_context(str(directory / "server" / "tls" / "server-ca.pem"))
        token = (directory / "server" / "admin-token").read_text().strip()
        ws = workspace.create(directory / "release-keys", 3, 2, None)
        with ApiClient(first.url, context, token) as admin:
            publish.init_repository(admin, ws, now)
        say(f"platform: TUF repository initialised on {first.url}: root signed by 2 of 3 "
            f"offline keys in {ws.root / 'keys'}, snapshot/timestamp keys online")
    say(f"factory: making OEM keys, CA and release 1.0.0 (shipping the TUF root) in "
        f"{directory / 'factory'}")
    factory = station.init(directory / "factory", "ew-gw1", "Demo Gateways Inc.", "1.0.0", 1,
                           None, now, ws.root_json.read_bytes())
    settings = Settings(directory / "server", None, "127.0.0.1", _free_port(),
                        (factory.root / "ca.pem",), (factory.release.known_good,))
    with Running(settings, now) as server:
        result.server = server.url
        server_ca = settings.data / "tls" / "server-ca.pem"
        say(f"fleet server: {server.url} (SQLite in {settings.data})")
        for serial in SERIALS:
            outcome = GatewayOutcome(serial)
            result.gateways.append(outcome)
            device = directory / "gateways" / serial
            provision(factory, device, serial, None, now)
            outcome.provisioned = True
            say(f"{serial}: provisioned (fuses burnt, identity made on the device, slot A)")
            report = boot(VirtualBoard.open(device))
            outcome.first_boot = report.verdict
            say(f"{serial}: boot {report.verdict}, register {report.register.hex()[:16]}…")
            outcome.attestation = _agent(device, server.url, server_ca)
            say(f"{serial}: agent enrolled it; server attestation {outcome.attestation}")
        tampered = VirtualBoard.open(directory / "gateways" / TAMPERED)
        at = flip_byte(tampered.partition_path("kernel_a"))
        say(f"{TAMPERED}: flipped one bit at byte {at} of its kernel bundle in flash")
        for outcome in result.gateways:
            device = directory / "gateways" / outcome.serial
            report = boot(VirtualBoard.open(device))
            outcome.after_tamper = report.verdict
            if report.refused_stage:
                outcome.refused_stage, outcome.reason = report.refused_stage, report.reason
            outcome.attestation_after = _agent(device, server.url, server_ca)
        result.fleet, token = _fleet_view(settings.data / "admin-token", server.url, server_ca)
        result.operator_token = directory / "operator" / "token"  # (its own 0700 folder)
        write_secret(result.operator_token, token.encode())
        healthy = [directory / "gateways" / g.serial for g in result.gateways
                   if g.after_tamper == "booted"]
        context = tls_context(str(server_ca))
        admin_token = (settings.data / "admin-token").read_text().strip()
        with ApiClient(server.url, context, admin_token) as admin, \
                ApiClient(server.url, context, token) as ops:
            for g in result.gateways:
                if g.after_tamper == "refused":  # it cannot attest: out of the fleet
                    ops.call("POST", f"/v1/gateways/{g.serial}/revoke")
                    say(f"{g.serial}: revoked by the tenant's operator (its boot is refused)")
            result.updates = demo_updates.run(directory, server.url, server_ca, admin, ops,
                                              factory, ws, healthy, say)
            result.apps = demo_apps.run(directory, admin, ops, ws, server.url, healthy, say,
                                        result.secrets)
            demo_secrets.recover(result.secrets, ops, directory / "gateways" / TAMPERED, say)
            result.monitoring = demo_monitoring.run(directory, admin, ops, ws, server.url,
                                                    healthy[0], say)
        if hold is not None:
            hold(result)
    power_off(directory)
    return result


def power_off(directory: Path) -> None:
    """The story told: every gateway off (data areas locked, loop devices released)."""
    for serial in SERIALS:
        device = directory / "gateways" / serial
        if (device / "fuses.bin").exists():
            VirtualBoard.open(device).power_off()


def reachable(directory: Path) -> None:
    """The gateways' apps run as their own users, who must be able to pass through the
    directories above their images (as they can above /data on a gateway)."""
    directory.mkdir(parents=True, exist_ok=True)
    for folder in (directory.resolve(), *directory.resolve().parents):
        if not folder.stat().st_mode & 0o001:
            raise StateError(f"{folder} is closed to other users (mode "
                             f"{folder.stat().st_mode & 0o777:o}): the demo's apps could not "
                             "reach their images; give --dir a place under /var/tmp")


def _agent(device: Path, url: str, server_ca: Path) -> str:
    """Run the gateway's agent once; what the server concluded, or why it could not run."""
    try:
        return enrol(device, url, server_ca)
    except Error as e:
        return f"cannot attest: {e.message}"


def _fleet_view(admin_token: Path, url: str, server_ca: Path
                ) -> tuple[list[dict[str, object]], str]:
    """What an operator sees: a tenant made, the gateways handed to it, then listed."""
    context = tls_context(str(server_ca))
    with ApiClient(url, context, admin_token.read_text().strip()) as admin:
        admin.call("POST", "/v1/tenants", {"name": "demo-hotels"})
        admin.call("POST", "/v1/users", {"name": "ops", "role": "admin",
                                         "tenant": "demo-hotels"})
        for serial in SERIALS:
            admin.call("POST", f"/v1/gateways/{serial}/assign", {"tenant": "demo-hotels"})
        token = admin.call("POST", "/v1/tokens", {"user": "ops", "tenant": "demo-hotels"})
    with ApiClient(url, context, token["token"]) as ops:
        listed: list[dict[str, object]] = ops.call("GET", "/v1/gateways")
    return listed, str(token["token"])
