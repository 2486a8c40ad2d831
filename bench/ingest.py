"""Telemetry ingest on the fleet server: reports per second and latency, against trivial requests.

Usage: ``.venv/bin/python bench/ingest.py [--gateways 64] [--concurrency 8] [--seconds 8]
[--warmup 2] [--prime 30] [--workers 2] [--databases sqlite,postgresql]``

Prints one JSON object. Per database the fleet server runs in this process (``Running``,
TLS on 127.0.0.1; PostgreSQL: a throwaway cluster, as bench/fleet_checkin.py makes it).
``--gateways`` identities are minted as bench/fleet_checkin.py does (no boards), enrolled
over mutual TLS and assigned to one tenant holding two alert rules, so every detector
runs; each posts a ``--prime`` batch of history first (its detectors past learning).
Then ``--concurrency`` sender threads, spread over ``--workers`` spawned processes, each
owning its share of the gateways (one keep-alive httpx client per gateway, taken in
turn), send back to back (closed loop) for ``--seconds`` after ``--warmup``, three times:

- ``healthz``: ``GET /healthz`` (one ``SELECT 1``), the floor of a request;
- ``heartbeat``: ``POST /v1/gateway/heartbeat``, a trivial authenticated write;
- ``telemetry``: ``POST /v1/gateway/telemetry``, one report per batch, as the agent sends
  it every interval: the agent's metric set, values from ``edgeward.sim`` (cohorts,
  apps, day cycles, noise), listeners and remote hosts; stored and judged.

Per phase: requests/s, latency percentiles, errors, the server's CPU per request (this
process; and the PostgreSQL processes'). ``ratios``: what ingest costs against each
baseline, from the same run on the same server.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import secrets
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psutil

import fleet_checkin as fc
from edgeward.device.telemetry.report import GAUGES, RATES
from edgeward.factory import station
from edgeward.server.runner import Running, Settings
from edgeward.sim import fleet as simfleet
from edgeward.sim import telemetry as simtelemetry

PHASES = ("healthz", "heartbeat", "telemetry")
INTERVAL = 30.0
TENANT = "bench"
RULES = ({"name": "hot-cpu", "metric": "cpu_percent", "op": ">", "threshold": 95.0,
          "duration": 300, "severity": "high"},
         {"name": "app-memory", "metric": "memory_bytes", "app": "*", "op": ">",
          "threshold": 2e9, "duration": 600})
Job = tuple[str, str, str]  # server URL, server CA file, station PEM


# --- what a gateway sends ----------------------------------------------------------------
def wire(sample: simtelemetry.Sample, at: float, rng: Any) -> dict[str, Any]:
    """The simulator's reading as the agent's report (report.build's shape). The agent
    sends more host metrics than the simulator models: those are filled in plausibly."""
    metrics: dict[str, float] = {}
    apps: dict[str, dict[str, float]] = {}
    for key, value in sample.values.items():
        if key.startswith("app/"):
            _, app, name = key.split("/", 2)
            apps.setdefault(app, {})[name] = round(value, 3)
        else:
            metrics[key] = round(value, 3)
    tx, rx = metrics.get("net_tx_rate", 0.0), metrics.get("net_rx_rate", 0.0)
    metrics.update({
        "disk_percent": metrics.get("disk_percent", 21.5),
        "load1": round(metrics.get("cpu_percent", 10.0) / 25.0, 2),
        "net_tx_packets_rate": round(tx / 700.0, 3), "net_rx_packets_rate": round(rx / 500.0, 3),
        "disk_read_rate": round(rng.uniform(0, 4096), 3),
        "disk_write_rate": round(rng.uniform(2048, 16384), 3)})
    assert set(metrics) == set(GAUGES) | set(RATES.values()), sorted(metrics)
    return {"at": at, "interval": INTERVAL, "boot_id": sample.boot_id, "metrics": metrics,
            "apps": apps,
            "listening": [{"proto": proto, "address": "0.0.0.0", "port": port,  # noqa: S104
                           "process": process, "app": app}
                          for proto, port, process, app in sample.listening],
            "remotes": [{"host": host, "port": port, "process": process, "app": app}
                        for host, port, process, app in sample.remotes]}


class Sender:
    """One gateway's client and what it sends."""

    def __init__(self, job: Job, gateway: fc.Gateway, sim: simfleet.Gateway) -> None:
        url, server_ca, _ = job
        context = ssl.create_default_context(cafile=server_ca)
        context.load_cert_chain(gateway[1], gateway[2])
        self.client = httpx.Client(
            base_url=url, verify=context, timeout=60.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1,
                                keepalive_expiry=None))
        self.gateway, self.sim = gateway, sim
        self.beat = {**fc.BEAT, "boot_id": sim.boot_id}

    def report(self, at: float) -> dict[str, Any]:
        sample = simtelemetry.reading(self.sim, at, INTERVAL, [])
        assert sample is not None  # no episodes: it never reboots
        return wire(sample, at, self.sim.rng)

    def request(self, kind: str, body: dict[str, Any] | None) -> httpx.Response:
        if kind == "healthz":
            return self.client.get("/healthz")
        path = {"heartbeat": "/v1/gateway/heartbeat", "telemetry": "/v1/gateway/telemetry",
                "enrol": "/v1/gateway/enrol"}[kind]
        return self.client.post(path, json=body)

    def body(self, kind: str, station_pem: str, history: int = 1) -> dict[str, Any] | None:
        if kind == "heartbeat":
            return self.beat
        if kind == "enrol":
            return {"record": self.gateway[3], "station_certificate": station_pem}
        if kind == "telemetry":
            now = time.time()
            return {"batch": secrets.token_hex(16),
                    "reports": [self.report(now - INTERVAL * (history - 1 - i))
                                for i in range(history)]}
        return None


# --- the load generator (spawned child processes) --------------------------------------
class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.stored = self.alerts = self.duplicates = 0
        self.lock = threading.Lock()


def send(sender: Sender, kind: str, body: dict[str, Any] | None, tally: Tally,
         window: tuple[float, float] | None) -> None:
    sent = time.monotonic()
    try:
        response = sender.request(kind, body)
        outcome = "ok" if response.status_code in (200, 201) else f"http {response.status_code}"
    except httpx.HTTPError as e:
        response, outcome = None, type(e).__name__
    done = time.monotonic()
    if window is not None and not window[0] <= done <= window[1]:
        return
    with tally.lock:
        if outcome != "ok" or response is None:
            tally.errors[outcome] += 1
            return
        tally.latencies.append(done - sent)
        if kind == "telemetry":
            answer = response.json()
            tally.stored += int(answer.get("stored", 0))
            tally.alerts += int(answer.get("alerts", 0))
            tally.duplicates += bool(answer.get("duplicate"))


def sender_thread(senders: list[Sender], kind: str, job: Job, tally: Tally,
                  window: tuple[float, float] | None, history: int) -> None:
    """Closed loop over this thread's gateways (once each without a window)."""
    turn = 0
    while senders:
        sender = senders[turn % len(senders)]
        turn += 1
        if window is None and turn > len(senders):
            return
        if window is not None and time.monotonic() >= window[1]:
            return
        send(sender, kind, sender.body(kind, job[2], history), tally, window)


def worker(job: Job, gateways: list[fc.Gateway], indices: list[int], threads: int,
           conn: Connection) -> None:
    sims = simfleet.build(max(indices) + 1, 1, time.time())
    senders = [Sender(job, g, sims[i]) for g, i in zip(gateways, indices, strict=True)]
    try:
        conn.send("ready")
        while (command := conn.recv())[0] != "stop":
            kind, window, history = command
            tally = Tally()
            cpu0 = fc.cpu_s()
            running = [threading.Thread(target=sender_thread, args=(
                senders[t::threads], kind, job, tally, window, history)) for t in range(threads)]
            for thread in running:
                thread.start()
            for thread in running:
                thread.join()
            conn.send({"latencies": tally.latencies, "errors": tally.errors,
                       "stored": tally.stored, "alerts": tally.alerts,
                       "duplicates": tally.duplicates, "cpu_s": fc.cpu_s() - cpu0})
    finally:
        for sender in senders:
            sender.client.close()


# --- the server side (this process) ----------------------------------------------------
def postgres_cpu_s() -> float:
    """CPU of the PostgreSQL processes started by this one (live ones: the server's pooled
    connections' backends and the postmaster's helpers)."""
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if p.name() == "postgres":
                t = p.cpu_times()
                total += t.user + t.system
    return total


def tenant_with_rules(server: Running, serials: list[str]) -> dict[str, Any]:
    """One tenant holds every gateway and two rules (the rules' detector runs too)."""
    token = (server.settings.data / "admin-token").read_text()
    context = ssl.create_default_context(cafile=str(server.settings.data / "tls" /
                                                    "server-ca.pem"))
    with httpx.Client(base_url=server.url, verify=context, timeout=60.0,
                      headers={"authorization": f"Bearer {token}"}) as admin:
        admin.post("/v1/tenants", json={"name": TENANT}).raise_for_status()
        for serial in serials:
            admin.post(f"/v1/gateways/{serial}/assign", json={"tenant": TENANT}
                       ).raise_for_status()
        made = [admin.post("/v1/alert-rules", json={**rule, "tenant": TENANT}).status_code
                for rule in RULES]
    return {"tenant": TENANT, "gateways": len(serials), "rules": sum(s == 201 for s in made),
            "rule_statuses": made}


def phase(pipes: list[Connection], procs: list[Any], kind: str, args: argparse.Namespace
          ) -> dict[str, Any]:
    start = time.monotonic() + args.warmup
    end = start + args.seconds
    for pipe in pipes:
        pipe.send((kind, (start, end), 1))
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0, pg0 = fc.cpu_s(), postgres_cpu_s()
    time.sleep(max(0.0, end - time.monotonic()))
    cpu1, pg1, mem = fc.cpu_s(), postgres_cpu_s(), fc.memory_kib()
    results = fc.collect(pipes, procs, 300)
    lat = sorted(x for r in results for x in r["latencies"])
    errors: Counter[str] = sum((r["errors"] for r in results), Counter())
    n = len(lat)
    out: dict[str, Any] = {
        "requests": n, "per_s": round(n / args.seconds, 1),
        "latency_ms": {"p50": fc.ms(lat, 0.5), "p90": fc.ms(lat, 0.9), "p99": fc.ms(lat, 0.99),
                       "max": fc.ms(lat, 1.0)},
        "errors": sum(errors.values()), "error_kinds": dict(errors),
        "server_cpu_ms_per_request": round(1000 * (cpu1 - cpu0) / n, 3) if n else None,
        "postgres_cpu_ms_per_request": round(1000 * (pg1 - pg0) / n, 3) if n else None,
        "server_rss_kib_at_end": mem.get("VmRSS"),
        "load_workers_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
    }
    if kind == "telemetry":
        out.update({"reports_stored": sum(r["stored"] for r in results),
                    "reports_per_s": round(sum(r["stored"] for r in results) / args.seconds,
                                           1),
                    "alerts_raised": sum(r["alerts"] for r in results),
                    "duplicates": sum(r["duplicates"] for r in results)})
    return out


def once(pipes: list[Connection], procs: list[Any], kind: str, history: int = 1
         ) -> dict[str, Any]:
    """Every gateway sends one request of ``kind``; outcomes and wall time."""
    began = time.monotonic()
    for pipe in pipes:
        pipe.send((kind, None, history))
    results = fc.collect(pipes, procs, 900)
    wall = time.monotonic() - began
    errors: Counter[str] = sum((r["errors"] for r in results), Counter())
    done = sum(len(r["latencies"]) for r in results)
    return {"ok": done, "errors": dict(errors), "wall_s": round(wall, 2),
            "per_s": round(done / wall, 1) if wall else None,
            "reports_per_s": round(done * history / wall, 1) if wall and kind == "telemetry"
            else None}


def run_database(url: str | None, data: Path, factory: station.Factory,
                 gateways: list[fc.Gateway], args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(data, url, "127.0.0.1", fc.free_port(), (factory.root / "ca.pem",), ())
    spawn = multiprocessing.get_context("spawn")  # not fork: the server's threads run
    pipes: list[Connection] = []
    procs: list[Any] = []
    out: dict[str, Any] = {"status": "ok"}
    with Running(settings, dt.datetime.now(dt.UTC)) as server:
        job: Job = (server.url, str(data / "tls" / "server-ca.pem"),
                    (factory.root / "station.pem").read_text())
        try:
            for i in range(args.workers):
                pipe, child = spawn.Pipe()
                threads = len(range(i, args.concurrency, args.workers))
                indices = list(range(i, len(gateways), args.workers))
                procs.append(spawn.Process(target=worker, daemon=True, args=(
                    job, [gateways[j] for j in indices], indices, threads, child)))
                procs[-1].start()
                child.close()
                pipes.append(pipe)
            fc.collect(pipes, procs, 300)
            out["enrolment"] = once(pipes, procs, "enrol")
            out["tenant"] = tenant_with_rules(server, [g[0] for g in gateways])
            out["prime"] = {"reports_per_gateway": args.prime,
                            **once(pipes, procs, "telemetry", args.prime)}
            for kind in PHASES:
                out[kind] = phase(pipes, procs, kind, args)
            for pipe in pipes:
                pipe.send(("stop", None, 0))
            for proc in procs:
                proc.join(timeout=30)
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=10)
    ingest = out["telemetry"]
    out["ratios"] = {
        f"telemetry_over_{base}": {
            "cost_per_request": round(out[base]["per_s"] / ingest["per_s"], 2)
            if ingest["per_s"] else None,
            "latency_p50": _ratio(ingest["latency_ms"]["p50"], out[base]["latency_ms"]["p50"]),
            "latency_p99": _ratio(ingest["latency_ms"]["p99"], out[base]["latency_ms"]["p99"]),
            "server_cpu": _ratio(ingest["server_cpu_ms_per_request"],
                                 out[base]["server_cpu_ms_per_request"])}
        for base in ("healthz", "heartbeat")}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="sender threads (requests in flight), over all workers")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured, per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured, per phase")
    parser.add_argument("--prime", type=int, default=30,
                        help="reports of history each gateway sends first (1 to 60)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    databases = [b.strip() for b in args.databases.split(",") if b.strip()]
    if not set(databases) <= {"sqlite", "postgresql"}:
        parser.error("--databases takes sqlite and/or postgresql")
    if not 1 <= args.workers <= args.concurrency <= args.gateways or not 1 <= args.prime <= 60:
        parser.error("1 <= --workers <= --concurrency <= --gateways; 1 <= --prime <= 60")
    sim = simfleet.build(1, 1, time.time())[0]
    sample = simtelemetry.reading(sim, time.time(), INTERVAL, [])
    assert sample is not None
    batch = {"batch": "0" * 32, "reports": [wire(sample, time.time(), sim.rng)]}
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_1m_at_start": os.getloadavg()[0],
                    "note": "server (this process), PostgreSQL and load workers share "
                            "these CPUs"},
        "load": {"gateways": args.gateways, "concurrency": args.concurrency,
                 "workers": args.workers, "seconds": args.seconds, "warmup_s": args.warmup,
                 "model": "closed loop: each sender thread sends its next request when the "
                          "last is answered, taking its gateways in turn",
                 "connections": "one keep-alive mTLS connection per gateway",
                 "telemetry_batch_bytes": len(json.dumps(batch, separators=(",", ":"))),
                 "telemetry_example": batch},
        "databases": {},
    }
    failed = False
    with tempfile.TemporaryDirectory(prefix="edgeward-ingest-bench-") as tmp_name:
        tmp = Path(tmp_name)
        now = dt.datetime.now(dt.UTC)
        began = time.monotonic()
        factory = station.init(tmp / "factory", "ew-gw1", "Bench Gateways Ltd", "1.0.0", 1,
                               None, now)
        (tmp / "gateways").mkdir(mode=0o700)
        gateways = fc.mint(factory, tmp / "gateways", args.gateways, now)
        report["mint_s"] = round(time.monotonic() - began, 2)  # factory init included
        for database in databases:
            try:
                with (contextlib.nullcontext(None) if database == "sqlite"
                      else fc.postgres()) as url:
                    result = run_database(url, tmp / f"server-{database}", factory, gateways,
                                          args)
            except fc.Unavailable as e:
                result = {"status": "skipped", "reason": str(e)}
            except Exception as e:  # still report the other database's figures
                result, failed = {"status": "failed", "reason": repr(e)}, True
            report["databases"][database] = result
    report["summary"] = {
        name: {"reports_per_s": r["telemetry"]["reports_per_s"],
               "p50_ms": r["telemetry"]["latency_ms"]["p50"],
               "p99_ms": r["telemetry"]["latency_ms"]["p99"],
               "heartbeat_per_s": r["heartbeat"]["per_s"], "healthz_per_s": r["healthz"]["per_s"],
               "ingest_cost_x_heartbeat": r["ratios"]["telemetry_over_heartbeat"][
                   "cost_per_request"],
               "ingest_cost_x_healthz": r["ratios"]["telemetry_over_healthz"][
                   "cost_per_request"]}
        for name, r in report["databases"].items() if r["status"] == "ok"}
    report["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
