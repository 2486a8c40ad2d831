"""The simulated fleet against a real fleet server: each gateway gets an identity as the
factory makes one, enrols, and then checks in, reports and pushes its events as the
agent does, over mutual TLS.

Identities: a P-384 key and a certificate from the factory's CA for serial
``SIM-<run>-<n>`` (``run``: a few random hex digits, so that runs never collide with one
another's serials), and a manufacturing record signed with the station's key. A
clone's second device holds the same certificate and reports with its own boot id.

Pacing: the warm-up is sent at once, stamped with the times it covers (the past), then
the scored span follows the wall clock, one interval at a time (``live``); or all of it
is sent at once, ending now (``fast``: for tests and quick looks; the server judges
failed logins against its own clock, so a brute force sent in the past is not seen).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgeward.errors import InputError, Unreachable
from edgeward.factory.record import sign_record
from edgeward.factory.station import Factory
from edgeward.files import write_secret
from edgeward.sim import wire
from edgeward.sim.fleet import Gateway, build
from edgeward.sim.runner import Scenario, plan, span
from edgeward.sim.telemetry import Sample
from edgeward.sim.timeline import Timeline
from edgeward.trust import certs, keys

PACES = ("live", "fast")
TIMEOUT = 30.0
SENDERS = 8  # gateways sending at once


@dataclass(frozen=True)
class Identity:
    serial: str
    cert: Path
    key: Path
    record: str


def mint(factory: Factory, passphrase: bytes | None, serials: Sequence[str], folder: Path,
         now: dt.datetime) -> list[Identity]:
    """Identities made as the factory makes them (without a board: no fuses burnt)."""
    ca_key, ca_cert = factory.key("ca", passphrase), factory.ca_cert
    station_key = factory.key("station", passphrase)
    made = []
    for serial in serials:
        key = keys.generate(keys.Algorithm.ECDSA_P384)
        cert = certs.issue(ca_key, ca_cert, certs.make_csr(key, serial), serial, factory.model,
                           now)
        record = {
            "type": "manufacturing-record", "serial": serial, "model": factory.model,
            "manufacturer": factory.manufacturer, "certificate_sha384": certs.fingerprint(cert),
            "fuse_hash": hashlib.sha384(b"simulated fuses:" + serial.encode()).hexdigest(),
            "root_key_hash": keys.key_hash(factory.public_key("boot-root")).hex(),
            "security_version": 1, "os_security_version": 1,
            "release": {"bl2": "1.0.0", "kernel": "1.0.0", "rootfs": "1.0.0"},
            "provisioned_at": now.isoformat(),
        }
        cert_file, key_file = folder / f"{serial}.pem", folder / f"{serial}.key"
        cert_file.write_bytes(certs.cert_pem(cert))
        write_secret(key_file, keys.private_pem(key))
        made.append(Identity(serial, cert_file, key_file,
                             sign_record(record, station_key).decode()))
    return made


class Link:
    """One gateway's connection (its certificate; a clone's second device shares it)."""

    def __init__(self, url: str, ca: Path, identity: Identity) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(identity.cert, identity.key)
        self.identity = identity
        self.client = httpx.Client(base_url=url, verify=context, timeout=TIMEOUT)
        self.errors: Counter[str] = Counter()

    def post(self, path: str, body: dict[str, Any]) -> bool:
        try:
            response = self.client.post(path, json=body)
        except httpx.HTTPError as e:
            self.errors[f"{path}: {type(e).__name__}"] += 1
            return False
        if response.status_code != 200:
            self.errors[f"{path}: http {response.status_code}"] += 1
            return False
        return True

    def close(self) -> None:
        self.client.close()


def run_online(scenario: Scenario, url: str, ca: Path, factory: Factory,
               passphrase: bytes | None, folder: Path, pace: str = "live",
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    if pace not in PACES:
        raise InputError(f"pace: one of {', '.join(PACES)}")
    now = time.time()
    # the scored span starts now (live) or ends now (fast); cycles follow the real day
    start = now if pace == "live" else now - scenario.hours * 3600.0
    scenario = dataclasses.replace(scenario, start=start)
    fleet = build(scenario.gateways, scenario.seed, scenario.begin)
    episodes = plan(scenario, fleet)
    run = secrets.token_hex(3)
    names = {g.serial: f"SIM-{run}-{g.index + 1:05d}" for g in fleet}
    identities = mint(factory, passphrase, list(names.values()), folder,
                      dt.datetime.fromtimestamp(now, dt.UTC))
    links = {sim: Link(url, ca, identity) for sim, identity in zip(names, identities,
                                                                    strict=True)}
    sent: Counter[str] = Counter()
    try:
        for link in links.values():
            if not link.post("/v1/gateway/enrol", {
                    "record": link.identity.record,
                    "station_certificate": certs.cert_pem(factory.station_cert).decode()}):
                raise Unreachable(f"{url}: enrolling {link.identity.serial} failed "
                                  f"({', '.join(link.errors)})")
        timeline = Timeline(span(scenario), fleet, episodes)
        by_serial = {g.serial: g for g in fleet}
        with ThreadPoolExecutor(SENDERS) as pool:
            for step in range(scenario.steps):
                end = timeline.span.time(step + 1)
                if pace == "live" and end > time.time():
                    time.sleep(end - time.time())  # every report of the step is past
                samples: dict[str, list[Sample]] = {}
                for sample in timeline.step(step):
                    samples.setdefault(sample.serial, []).append(sample)
                jobs = [pool.submit(_send, links[serial], by_serial[serial], timeline, mine,
                                    scenario.interval) for serial, mine in samples.items()]
                for job in jobs:
                    sent.update(job.result())
                if progress is not None:
                    progress(step + 1, scenario.steps)
    finally:
        for link in links.values():
            link.close()
    errors = sum((link.errors for link in links.values()), Counter[str]())
    return {
        "server": url, "run": run, "pace": pace, "gateways": scenario.gateways,
        "scored_from": _iso(scenario.start), "scored_until": _iso(scenario.end),
        "sent": dict(sorted(sent.items())), "errors": dict(sorted(errors.items())),
        "attacks": [{"attack": e.kind, "gateway": names[fleet[e.gateway].serial],
                     "start": _iso(e.start), "end": _iso(e.end)}
                    for e in episodes if e.attack],
        "confounders": sorted({e.cause for e in episodes if not e.attack}),
    }


def _send(link: Link, gateway: Gateway, timeline: Timeline, samples: list[Sample],
          interval: float) -> Counter[str]:
    """A gateway's step: its check-in, its events, its reports (a clone: both devices')."""
    sent: Counter[str] = Counter()
    for sample in samples:
        version = timeline.versions(gateway, sample.at)
        sent["heartbeats"] += link.post("/v1/gateway/heartbeat", {
            "slot": "a", "boot_id": sample.boot_id,
            "versions": {"bl2": "1.0.0", "kernel": version, "rootfs": version}})
    events = [wire.event(e) for s in samples for e in s.events]
    for chunk in wire.chunks(events, wire.MAX_EVENTS):
        sent["events"] += len(chunk) * link.post("/v1/gateway/events", wire.events_batch(chunk))
    reports = [wire.report(s, interval) for s in samples]
    sent["reports"] += len(reports) * link.post("/v1/gateway/telemetry",
                                                wire.telemetry_batch(reports))
    return sent


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")
