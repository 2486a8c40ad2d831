"""The fleet server under N simulated gateways heartbeating over keep-alive mutual TLS.

Usage: ``.venv/bin/python bench/fleet_checkin.py [--gateways 1000] [--seconds 20]
[--warmup 5] [--workers 2] [--interval 0] [--backends sqlite,postgresql]``

Prints one JSON object. Gateways are minted in-process (own P-384 key, certificate
from a fresh factory CA, station-signed record). Per backend the server runs in
this process (``Running``); ``--workers`` spawned processes hold one
httpx.AsyncClient (one connection) per gateway, enrol each once (timed apart),
then heartbeat back to back (closed loop: capacity) or once per ``--interval``
seconds. Server CPU and memory are this process's, sampled at the window's edges.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import gc
import hashlib
import importlib
import json
import multiprocessing
import os
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from edgeward.factory import station
from edgeward.factory.record import sign_record
from edgeward.server.api.models import HeartbeatRequest
from edgeward.server.runner import Running, Settings
from edgeward.trust import certs, keys

ROOT = Path(__file__).resolve().parents[1]
BEAT = {"slot": "a", "versions": {"bl2": "1.0.0", "kernel": "1.0.0", "rootfs": "1.0.0"}}
# The heartbeat may require a boot_id (its model is strict: an unknown field is refused too).
BOOT_IDS = "boot_id" in HeartbeatRequest.model_fields
Gateway = tuple[str, str, str, str]  # serial, certificate file, key file, signed record
Job = tuple[str, str, str, float]  # server URL, server CA file, station PEM, interval


class Unavailable(Exception):
    """A backend that cannot be set up here (reported as skipped)."""


def mint(factory: station.Factory, out: Path, count: int, now: dt.datetime) -> list[Gateway]:
    ca_key, ca_cert = factory.key("ca", None), factory.ca_cert
    station_key = factory.key("station", None)
    made: list[Gateway] = []
    for i in range(1, count + 1):
        serial = f"sim-{i:05d}"
        key = keys.generate(keys.Algorithm.ECDSA_P384)
        cert = certs.issue(ca_key, ca_cert, certs.make_csr(key, serial), serial, factory.model,
                           now)
        record = {
            "type": "manufacturing-record", "serial": serial, "model": factory.model,
            "manufacturer": factory.manufacturer, "certificate_sha384": certs.fingerprint(cert),
            "fuse_hash": hashlib.sha384(b"fuses:" + serial.encode()).hexdigest(),
            "root_key_hash": hashlib.sha384(b"root-key").hexdigest(), "security_version": 1,
            "os_security_version": 1,
            "release": BEAT["versions"], "provisioned_at": now.isoformat(),
        }
        cert_file, key_file = out / f"{serial}.pem", out / f"{serial}.key"
        cert_file.write_bytes(certs.cert_pem(cert))
        key_file.touch(mode=0o600)
        key_file.write_bytes(keys.private_pem(key))
        made.append((serial, str(cert_file), str(key_file),
                     sign_record(record, station_key).decode()))
    return made


# --- the load generator (spawned child processes) --------------------------------------
async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    """'ok', or why not: an HTTP status or an exception name."""
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as e:
        return type(e).__name__
    return "ok" if response.status_code == 200 else f"http {response.status_code}"


async def _beat(client: httpx.AsyncClient, interval: float, start: float, end: float,
                latencies: list[float], errors: Counter[str]) -> None:
    body = {**BEAT, "boot_id": secrets.token_hex(16)} if BOOT_IDS else BEAT  # one boot
    await asyncio.sleep(random.uniform(0, interval))  # spread the gateways out
    while (sent := time.monotonic()) < end:  # bounded: each request has a timeout
        outcome = await _post(client, "/v1/gateway/heartbeat", body)
        done = time.monotonic()
        if start <= done <= end:
            if outcome == "ok":
                latencies.append(done - sent)
            else:
                errors[outcome] += 1
        await asyncio.sleep(max(0.0, min(sent + interval, end) - done))


async def _cpu_at(when: float) -> float:
    await asyncio.sleep(max(0.0, when - time.monotonic()))
    return cpu_s()


def cpu_s() -> float:
    return sum(os.times()[:2])  # user + system seconds of this process


async def _load(job: Job, gateways: list[Gateway], conn: Connection) -> None:
    url, server_ca, station_pem, interval = job
    clients = []
    for _, cert_file, key_file, _ in gateways:
        context = ssl.create_default_context(cafile=server_ca)
        context.load_cert_chain(cert_file, key_file)  # httpx's cert= does not work here
        clients.append(httpx.AsyncClient(
            base_url=url, verify=context, timeout=60.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1,
                                keepalive_expiry=None)))  # httpx: 5 s idle by default
    try:
        conn.send("ready")
        conn.recv()  # go: enrol, at most 32 at a time
        gate = asyncio.Semaphore(32)

        async def enrol(client: httpx.AsyncClient, record: str) -> str:
            async with gate:
                return await _post(client, "/v1/gateway/enrol",
                                   {"record": record, "station_certificate": station_pem})

        conn.send(Counter(await asyncio.gather(
            *(enrol(c, g[3]) for c, g in zip(clients, gateways, strict=True)))))
        start, end = conn.recv()
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        cpu = asyncio.gather(_cpu_at(start), _cpu_at(end))
        await asyncio.gather(*(_beat(c, interval, start, end, latencies, errors)
                               for c in clients))
        cpu_start, cpu_end = await cpu
        conn.send({"latencies": latencies, "errors": errors, "cpu_s": cpu_end - cpu_start})
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


def worker(job: Job, gateways: list[Gateway], conn: Connection) -> None:
    asyncio.run(_load(job, gateways, conn))


# --- the server side (this process) ----------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_kib() -> dict[str, int]:
    lines = (x.partition(":") for x in Path("/proc/self/status").read_text().splitlines())
    return {k: int(v.split()[0]) for k, _, v in lines if k in ("VmHWM", "VmRSS")}


def collect(pipes: list[Connection], procs: list[Any], timeout: float) -> list[Any]:
    """One message from every worker, or an error if one dies or the time runs out."""
    deadline = time.monotonic() + timeout
    out = []
    for pipe, proc in zip(pipes, procs, strict=True):
        while not pipe.poll(0.2):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"load worker {proc.pid} died or timed out")
        out.append(pipe.recv())
    return out


def ms(lat: list[float], q: float) -> float | None:
    return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else None


def run_backend(url: str | None, data: Path, factory: station.Factory,
                gateways: list[Gateway], args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(data, url, "127.0.0.1", free_port(), (factory.root / "ca.pem",), ())
    spawn = multiprocessing.get_context("spawn")  # not fork: the server's threads run
    pipes: list[Connection] = []
    procs: list[Any] = []
    gc.collect()  # hand back what an earlier backend's run left in the heap (glibc)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    rss_at_start = memory_kib().get("VmRSS")
    with Running(settings, dt.datetime.now(dt.UTC)) as server:
        job: Job = (server.url, str(data / "tls" / "server-ca.pem"),
                    (factory.root / "station.pem").read_text(), args.interval)
        try:
            for i in range(args.workers):
                pipe, child = spawn.Pipe()
                procs.append(spawn.Process(target=worker, daemon=True,
                                           args=(job, gateways[i::args.workers], child)))
                procs[-1].start()
                child.close()
                pipes.append(pipe)
            collect(pipes, procs, 300)
            began = time.monotonic()
            for pipe in pipes:
                pipe.send("enrol")
            enrolled = sum(collect(pipes, procs, 600), Counter())
            enrol_s = time.monotonic() - began
            start = time.monotonic() + args.warmup
            end = start + args.seconds
            for pipe in pipes:
                pipe.send((start, end))
            time.sleep(max(0.0, start - time.monotonic()))
            peak = "peak_in_window"
            try:
                Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)
            except OSError:
                peak = "peak_since_bench_start"
            cpu0, mem0 = cpu_s(), memory_kib()
            time.sleep(max(0.0, end - time.monotonic()))
            cpu1, mem1 = cpu_s(), memory_kib()
            results = collect(pipes, procs, 180)
            for proc in procs:
                proc.join(timeout=30)
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=10)
    lat = sorted(x for r in results for x in r["latencies"])
    errors: Counter[str] = sum((r["errors"] for r in results), Counter())
    server_cpu = cpu1 - cpu0
    return {
        "status": "ok", "gateways": len(gateways), "duration_s": args.seconds,
        "warmup_s": args.warmup,
        "enrolment": {"wall_s": round(enrol_s, 2), "outcomes": dict(enrolled),
                      "per_s": round(len(gateways) / enrol_s, 1)},
        "checkins": len(lat), "checkins_per_s": round(len(lat) / args.seconds, 1),
        "latency_ms": {"p50": ms(lat, 0.5), "p90": ms(lat, 0.9), "p99": ms(lat, 0.99),
                       "max": ms(lat, 1.0)},
        "errors": sum(errors.values()), "error_kinds": dict(errors),
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_ms_per_checkin": round(1000 * server_cpu / len(lat), 3) if lat else None,
        "server_rss_kib": {"before_server_start": rss_at_start,
                           "window_start": mem0.get("VmRSS"), "window_end": mem1.get("VmRSS"),
                           peak: max(m.get(k, 0) for m in (mem0, mem1) for k in m)},
        "load_workers_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
    }


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway cluster with one database, via tests/server/conftest.py's helpers."""
    sys.path.insert(0, str(ROOT))
    pg = importlib.import_module("tests.server.conftest")
    root = Path(tempfile.mkdtemp(prefix="edgeward-bench-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        try:
            bindir = pg._find_bindir()
            if bindir is None:
                raise Unavailable("PostgreSQL server binaries (initdb, postgres) not found")
            run_as = pg._run_as()
            if run_as:
                os.chown(root, run_as["user"], run_as["group"])
            initdb = subprocess.run(
                [str(bindir / "initdb"), "-D", str(root / "data"), "--username", pg.PG_USER,
                 "--auth", "trust", "--no-sync", "--encoding", "UTF8", "--locale", "C"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=root,
                check=False, **run_as)
            if initdb.returncode != 0:
                raise Unavailable(f"initdb failed: {initdb.stderr.strip()[-400:]}")
            proc, cluster = pg._start(bindir, root / "data", root, root / "postgres.log", run_as)
            with cluster.connect() as conn:
                conn.execute("CREATE DATABASE edgeward_bench")
        except (pg.pytest.fail.Exception, pg.pytest.skip.Exception, OSError) as e:
            raise Unavailable(f"PostgreSQL could not be started: {e}") from e
        yield cluster.url("edgeward_bench")
    finally:
        if proc is not None:
            pg._stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between one gateway's heartbeats (0: back to back)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not set(backends) <= {"sqlite", "postgresql"} or not 1 <= args.workers <= args.gateways:
        parser.error("--backends takes sqlite and/or postgresql; 1 <= --workers <= --gateways")
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "loadavg_1m_at_start": os.getloadavg()[0],
                    "note": "server (this process) and load workers share these CPUs"},
        "load": {"workers": args.workers, "interval_s": args.interval,
                 "model": "closed loop: a gateway's next heartbeat follows the answer to its "
                 "last" if args.interval <= 0 else "one heartbeat per gateway per interval",
                 "connections": "one keep-alive mTLS connection per gateway",
                 "heartbeat": {**BEAT, "boot_id": "<32 hex, one per gateway>"} if BOOT_IDS
                 else BEAT},
        "backends": {},
    }
    failed = False
    with tempfile.TemporaryDirectory(prefix="edgeward-fleet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        now = dt.datetime.now(dt.UTC)
        began = time.monotonic()
        factory = station.init(tmp / "factory", "ew-gw1", "Bench Gateways Ltd", "1.0.0", 1,
                               None, now)
        (tmp / "gateways").mkdir(mode=0o700)
        gateways = mint(factory, tmp / "gateways", args.gateways, now)
        report["mint_s"] = round(time.monotonic() - began, 2)  # factory init included
        for backend in backends:
            try:
                with (contextlib.nullcontext(None) if backend == "sqlite"
                      else postgres()) as url:
                    result = run_backend(url, tmp / f"server-{backend}", factory, gateways,
                                         args)
            except Unavailable as e:
                result = {"status": "skipped", "reason": str(e)}
            except Exception as e:  # still report the other backend's figures
                result, failed = {"status": "failed", "reason": repr(e)}, True
            report["backends"][backend] = result
    report["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
