"""What monitoring costs on a gateway: the agent's memory, CPU per sample, bytes per report.

Usage: ``.venv/bin/python bench/agent_footprint.py [--samples 200] [--apps 3]
[--loop-seconds 10] [--quick]``

Prints one JSON object. The world is the update bench's (bench/update_world.py): a fleet
server in this process, a factory, and a gateway provisioned from it, booted, enrolled
and attested. ``--apps`` stand-in apps run on it: each a cgroup made as the app runtime
makes it, holding one process that listens on 127.0.0.1, and marked installed in the
gateway's app store, so the monitoring reads their usage and sockets as real apps'.

The measuring runs in a child process that imports only the gateway's code, as the
agent does: the agent (``Agent``), then its monitoring as ``Agent.start_monitoring``
makes it (audit off), started as ``Monitoring.start`` starts it. Then ``--samples``
rounds of every step below in turn (what else runs on the host drifts; every step sees
the same drift), each step's CPU time (the process's, before and after) per call:

- ``sample``: ``Monitoring.sample()``: the psutil sample, each app's cgroup usage, the
  socket scan, the report into the spool; then ``deliver``: the report posted to the
  server (``Monitoring._deliver``: a client made and a mutual-TLS connection, as the
  loop does it);
- ``scan``: ``Monitoring._scan()`` (the loop's every 2 s between reports), and
  ``idle_deliver``: ``_deliver`` with nothing to send (it follows every scan);
- ``parts``: the steps of a sample and of a scan, one by one (the scan looks up the
  gateway's processes once for the sockets and once for the executables), and the
  scan's two steps as ``whole_host`` (a real gateway's setting) would run them here;
- baselines: the bare psutil calls a sample makes (``psutil_sample_calls``) and the
  one a scan makes (``psutil_net_connections``), and reading the /proc files they
  read, raw (``proc_files_raw``). psutil's costs grow with the host: its processes
  (the socket owners are found through every /proc/PID/fd), sockets and block devices
  (``scan_scope`` counts them).

``per_interval``: the CPU of one interval at the default settings (30 s, a scan every
2 s) from those figures, and as a share of one CPU; ``loop``: the real monitoring thread
run for ``--loop-seconds`` at 1 s / 0.1 s, its CPU against that projection. Memory:
VmRSS of the child after the imports, with the agent made, with monitoring started and
after the samples, and VmHWM; a bare ``python -c 'import psutil'`` in the same run.
Report size: the batch as posted (JSON, as httpx encodes it) with one report, the last
of the rounds (``report_example``; its interval is short: the rounds sample back to back).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import update_world as uw

INTERVAL, SCAN_EVERY = 30.0, 2.0  # MonitorSettings' defaults, as the agent runs it
PROC_FILES = ("/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/net/dev",
              "/proc/diskstats")
PROC_SOCKETS = ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6")
LISTENER = "import socket, time\ns = socket.create_server(('127.0.0.1', 0))\ntime.sleep(3600)"


def vm_kib(*names: str) -> dict[str, int]:
    lines = (x.partition(":") for x in Path("/proc/self/status").read_text().splitlines())
    return {k: int(v.split()[0]) for k, _, v in lines if k in names}


def rounds(steps: dict[str, Callable[[], object]], n: int) -> dict[str, dict[str, float]]:
    """CPU and wall milliseconds per call of each step, over ``n`` rounds of all of them
    in turn (what else runs on the host drifts: every step sees the same drift)."""
    cpu, wall = dict.fromkeys(steps, 0.0), dict.fromkeys(steps, 0.0)
    for _ in range(n):
        for name, fn in steps.items():
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu[name] += time.process_time() - c
            wall[name] += time.perf_counter() - w
    return {name: {"cpu_ms": round(1000 * cpu[name] / n, 3),
                   "wall_ms": round(1000 * wall[name] / n, 3)} for name in steps}


# --- the gateway side (the child process) ------------------------------------------------
def child_bare() -> dict[str, Any]:
    import psutil  # noqa: F401 (its memory is the point)

    return vm_kib("VmRSS", "VmHWM")


def child_monitor(device: str, server: str, samples: int, loop_s: float) -> dict[str, Any]:
    import psutil

    from edgeward.board.virtual import VirtualBoard
    from edgeward.device.agent import Agent, AgentSettings
    from edgeward.device.apps import store
    from edgeward.device.telemetry import sockets
    from edgeward.device.telemetry.monitor import Monitoring, MonitorSettings

    rss = {"after_imports": vm_kib("VmRSS")["VmRSS"]}
    board = VirtualBoard.open(Path(device))
    agent = Agent(board, AgentSettings(server, once=True, update_every=0))
    rss["agent_made"] = vm_kib("VmRSS")["VmRSS"]
    watch = Monitoring(agent.board, agent._client, str(agent.boot["boot_id"]),
                       MonitorSettings(INTERVAL, SCAN_EVERY, audit_every=0))
    watch.sampler.sample()  # what Monitoring.start does before its thread: the counters'
    watch.usage.measure(store.installed(board), 0.0)  # starting points, the first scan
    watch._scan(first=not watch.seen)
    rss["monitoring_started"] = vm_kib("VmRSS")["VmRSS"]
    for _ in range(3):  # warm: imports on first use, connection set-up paths
        watch.sample()
        watch._deliver()
    data = str(board.data_dir)

    def psutil_sample() -> None:
        psutil.cpu_times(), psutil.net_io_counters(), psutil.disk_io_counters()
        psutil.virtual_memory(), psutil.disk_usage(data), os.getloadavg()

    def proc_raw() -> None:
        for name in PROC_FILES + PROC_SOCKETS:
            with open(name, "rb") as f:
                f.read()
        os.statvfs(data)

    owners = watch._apps()
    within = watch._scope(owners)
    installed = store.installed(board)
    groups: dict[str, dict[str, Callable[[], object]]] = {
        "costs": {"sample": watch.sample, "deliver": watch._deliver,  # the report just made
                  "scan": watch._scan, "idle_deliver": watch._deliver},
        "parts": {  # what a sample and a scan are made of, one by one
            "sampler_psutil_sample": watch.sampler.sample,
            "app_usage": lambda: watch.usage.measure(installed, INTERVAL),
            "app_owners": watch._apps,
            "gateway_pids": lambda: sockets.gateway_pids(owners),
            "sockets_scan": lambda: sockets.scan(owners, within),
            "writable_execs": lambda: sockets.writable_execs(owners, within),
            # MonitorSettings.whole_host (a real gateway's: every process is the
            # gateway's); here that is every process of the machine (see scan_scope)
            "whole_host_sockets_scan": lambda: sockets.scan(owners, None),
            "whole_host_writable_execs": lambda: sockets.writable_execs(owners, None)},
        "baselines": {"psutil_sample_calls": psutil_sample,
                      "psutil_net_connections": lambda: psutil.net_connections("inet"),
                      "proc_files_raw": proc_raw}}
    steps = {name: fn for group in groups.values() for name, fn in group.items()}
    timed = rounds(steps, samples)
    assert len(watch.spool) == 0, "reports left undelivered"
    rss["after_samples"] = vm_kib("VmRSS")["VmRSS"]
    report = watch.last
    scope = {"host_processes": len(psutil.pids()),
             "host_inet_sockets": len(psutil.net_connections("inet")),
             "host_block_devices": len(os.listdir("/sys/block")),
             "gateway_processes": len(sockets.gateway_pids(owners)),
             "apps_installed": len(store.installed(board)), "app_processes": len(owners)}
    loop = child_loop(watch, loop_s) if loop_s > 0 else None
    end = vm_kib("VmRSS", "VmHWM")
    rss.update({"at_end": end["VmRSS"], "peak_vmhwm": end["VmHWM"]})
    return {**{g: {name: timed[name] for name in steps_of} for g, steps_of in groups.items()},
            "rss_kib": rss, "scan_scope": scope,
            "report": report, "loop": loop}


def child_loop(watch: Any, seconds: float) -> dict[str, Any]:
    """The monitoring thread itself, faster (a report every 1 s, a scan every 0.1 s)."""
    from edgeward.device.telemetry.monitor import MonitorSettings

    counts = {"sample": 0, "scan": 0, "deliver": 0}

    def counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)
        return call

    watch.settings = MonitorSettings(1.0, 0.1, audit_every=0)
    watch.sample = counted("sample", watch.sample)
    watch._scan = counted("scan", watch._scan)
    watch._deliver = counted("deliver", watch._deliver)
    cpu, wall = time.process_time(), time.perf_counter()
    watch.start()  # its first sample and scan are counted too
    time.sleep(seconds)
    watch.close()
    return {"interval_s": 1.0, "scan_every_s": 0.1, "counts": counts,
            "cpu_s": round(time.process_time() - cpu, 4),
            "wall_s": round(time.perf_counter() - wall, 3)}


def child(argv: list[str]) -> None:
    mode, raw = argv
    args = json.loads(raw)
    result = child_bare() if mode == "bare" else child_monitor(
        args["device"], args["server"], args["samples"], args["loop_s"])
    print(json.dumps(result))


def in_child(mode: str, **args: Any) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(args)],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the bench (this process: server, gateway, stand-in apps) ----------------------------
@contextlib.contextmanager
def stand_in_apps(board: Any, count: int) -> Iterator[list[str]]:
    """``count`` apps as the monitoring sees them: a cgroup each (as the runtime makes it)
    with one listening process in it, and a ``current`` link in the app store."""
    from edgeward.device.apps import cgroups, store

    names = [f"bench{os.getpid()}-{i}" for i in range(1, count + 1)]
    made: list[tuple[Any, subprocess.Popen[bytes]]] = []
    try:
        for name in names:
            group = cgroups.create(name, 64 << 20, 0.5, 32)
            process = subprocess.Popen([sys.executable, "-c", LISTENER])
            made.append((group, process))
            for procs in group.procs:
                procs.write_text(str(process.pid))
            folder = store.apps_dir(board) / name
            folder.mkdir()
            (folder / "current").symlink_to("1.0.0")
        yield names
    finally:
        for group, process in made:
            process.kill()
            process.wait()
            cgroups.kill(group)
            cgroups.remove(group, wait=5.0)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def summarise(m: dict[str, Any], bare: dict[str, Any], batch_bytes: int) -> dict[str, Any]:
    c, b = m["costs"], m["baselines"]
    scans = round(INTERVAL / SCAN_EVERY) - 1  # between two reports
    interval_ms = c["sample"]["cpu_ms"] + c["deliver"]["cpu_ms"] + scans * (
        c["scan"]["cpu_ms"] + c["idle_deliver"]["cpu_ms"])
    out: dict[str, Any] = {
        "per_interval": {
            "interval_s": INTERVAL, "scan_every_s": SCAN_EVERY,
            "composition": f"1 sample + 1 delivery + {scans} scans + {scans} idle deliveries",
            "cpu_ms": round(interval_ms, 2),
            "cpu_percent_of_one_cpu": round(100 * interval_ms / (INTERVAL * 1000), 3),
            "cpu_s_per_day": round(interval_ms / 1000 * 86400 / INTERVAL, 1)},
        "ratios": {
            "sample_over_psutil_sample_calls_plus_net_connections": ratio(
                c["sample"]["cpu_ms"], b["psutil_sample_calls"]["cpu_ms"] +
                b["psutil_net_connections"]["cpu_ms"]),
            "scan_over_psutil_net_connections": ratio(
                c["scan"]["cpu_ms"], b["psutil_net_connections"]["cpu_ms"]),
            "sample_over_proc_files_raw": ratio(c["sample"]["cpu_ms"],
                                                b["proc_files_raw"]["cpu_ms"])},
        "rss_kib": {**m["rss_kib"], "bare_python_with_psutil": bare["VmRSS"],
                    "monitoring_growth": m["rss_kib"]["at_end"] -
                    m["rss_kib"]["agent_made"],
                    "agent_over_bare_python": m["rss_kib"]["at_end"] - bare["VmRSS"]},
        "report_bytes": {"batch_of_one": batch_bytes,
                         "per_day_at_interval": batch_bytes * round(86400 / INTERVAL)},
    }
    loop = m.get("loop")
    if loop:
        n = loop["counts"]
        # a sample's own scan is counted among the scans, and priced in the sample
        projected_ms = n["sample"] * (c["sample"]["cpu_ms"] + c["deliver"]["cpu_ms"]) + \
            max(0, n["scan"] - n["sample"]) * c["scan"]["cpu_ms"] + \
            max(0, n["deliver"] - n["sample"]) * c["idle_deliver"]["cpu_ms"]
        loop["projected_cpu_s"] = round(projected_ms / 1000, 4)
        loop["measured_over_projected"] = ratio(loop["cpu_s"], projected_ms / 1000)
        out["loop"] = loop
    return out


def run(samples: int, apps: int, loop_s: float) -> dict[str, Any]:
    import update_world as uw

    out: dict[str, Any] = {"machine": uw.machine(), "samples": samples, "apps": apps}
    with tempfile.TemporaryDirectory(prefix="edgeward-footprint-bench-") as name:
        t0 = time.perf_counter()
        with uw.world(Path(name)) as w:
            w.gateway("bench-monitor")  # provisioned, booted, enrolled, attested
            board = w.boards["bench-monitor"]
            out["world_setup_s"] = round(time.perf_counter() - t0, 2)
            with stand_in_apps(board, apps) as names:
                measured = in_child("monitor", device=str(board.root),
                                    server=w.server.url, samples=samples, loop_s=loop_s)
            out["app_names"] = names
            bare = in_child("bare")
            reports = fleet_reports(w)
    report = measured.pop("report")
    batch = {"batch": "0" * 32, "reports": [report]}
    batch_bytes = len(wire_json(batch))
    out.update(measured)
    out.update(summarise(measured, bare, batch_bytes))
    out["report_bytes"]["batch_of_60"] = len(wire_json({"batch": "0" * 32,
                                                         "reports": [report] * 60}))
    out["report_example"] = report
    out["server_stored_reports"] = reports
    out["machine"]["loadavg_1m_at_end"] = uw.machine()["loadavg_1m"]
    return out


def wire_json(body: dict[str, Any]) -> bytes:
    """The body as httpx (0.28) encodes ``json=``: compact, UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode()


def fleet_reports(w: uw.World) -> int:
    """How many reports of the gateway the server stored (its CPU points): delivered."""
    with w.admin() as admin:
        points = admin.call("GET", "/v1/gateways/bench-monitor/metrics?metric=cpu_percent"
                            f"&since={time.time() - 3600:.0f}&points=2000")["points"]
    return sum(int(p["count"]) for p in points)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200,
                        help="timed calls of each measured step")
    parser.add_argument("--apps", type=int, default=3, help="stand-in apps on the gateway")
    parser.add_argument("--loop-seconds", type=float, default=10.0,
                        help="the real monitoring thread, faster (0: skip)")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: --samples 5 --apps 1 --loop-seconds 2")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.apps, args.loop_seconds = 5, 1, 2.0
    if args.samples < 1 or args.apps < 0 or args.loop_seconds < 0:
        parser.error("--samples must be at least 1; --apps and --loop-seconds at least 0")
    start = time.perf_counter()
    result = run(args.samples, args.apps, args.loop_seconds)
    result["bench_wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
