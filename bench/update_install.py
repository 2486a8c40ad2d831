"""Benchmark a gateway installing an OS image through TUF against ``sha384sum`` of the image.

Usage: ``.venv/bin/python bench/update_install.py [--size 512] [--repeat 3] [--quick]
[--no-commit]``

Prints one JSON object. A real fleet server runs on 127.0.0.1 (this process, its own
threads); a release whose rootfs holds ``--size`` MiB of incompressible files is built
(``osbuild.build``) and published (``publish.publish_os``), and so is one of
``--size``/8 MiB. Each install runs the gateway's own code in a child process: the
agent's TUF client (shipped root, refresh, target lookup: ``installer.plan``), the
resumable download and the TUF length + SHA-384 check (``installer.fetch``), the
inactive slot written and verified as BL2 and the kernel will at boot
(``installer.write_and_verify``), try-boot staged (``installer.stage``), with the
progress reports the agent sends (timed apart). Phases are timed by wrapping the
functions ``installer`` calls; the downloads start from nothing in every run. The
reboot into the new slot and the health check + commit are timed once, apart.

Baselines in the same run, on the same rootfs file: ``sha384sum``, ``cp`` + ``sync``
(the I/O floor of one durable copy) and the raw HTTPS download (same mTLS context,
bytes discarded). Every timed measurement follows one untimed run of it (warm page
cache); figures are medians of ``--repeat`` runs. Peak memory is the child's VmHWM at
the end of an install, at both sizes: it must not grow with the image.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

# Only what the gateway's agent imports: the children's memory is an agent's. The server
# side (update_world) is imported by the parent alone.
from edgeward.board.virtual import VirtualBoard
from edgeward.device.agent import Agent, AgentSettings
from edgeward.device.updates import fetcher, installer, state
from edgeward.trust.targets import rootfs_path

if TYPE_CHECKING:
    import update_world as uw

MIB = 1 << 20
CHUNK = 1 << 20


def vm_kib(*names: str) -> dict[str, int]:
    lines = (x.partition(":") for x in Path("/proc/self/status").read_text().splitlines())
    return {k: int(v.split()[0]) for k, _, v in lines if k in names}


# --- the gateway side (child processes) --------------------------------------------------
def _agent(device: str, server: str) -> tuple[VirtualBoard, Agent]:
    board = VirtualBoard.open(Path(device))
    return board, Agent(board, AgentSettings(server, once=True, update_every=0))


def child_install(device: str, server: str, version: str, keep_staged: bool) -> dict[str, Any]:
    """One install of ``version`` as ``OsUpdater.install`` does it, phase by phase."""
    board, agent = _agent(device, server)
    updater = agent.updater()
    st = state.load(board)
    env0 = board.read_env()
    assert env0 is not None
    installer.clean(board)  # every run downloads from nothing
    start_hwm = vm_kib("VmHWM")["VmHWM"]
    spans: dict[str, float] = defaultdict(float)
    reports = {"count": 0, "seconds": 0.0}

    def timed(name: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before, t0 = reports["seconds"], time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:  # in-band progress reports are counted apart
                spans[name(*args)] += time.perf_counter() - t0 - (reports["seconds"] - before)
        return wrapper

    def progress(phase: str, percent: int) -> None:
        t0 = time.perf_counter()
        updater.report(st, phase, version, percent)
        reports["count"] += 1
        reports["seconds"] += time.perf_counter() - t0

    def kind(text: str) -> str:
        return "kernel" if "kernel" in text else "rootfs"

    with contextlib.ExitStack() as patches:  # the functions installer calls, timed
        patches.enter_context(mock.patch.object(installer, "download", timed(
            lambda http, url, part, *_: f"download_{kind(part.name)}", fetcher.download)))
        patches.enter_context(mock.patch.object(installer, "verify_slot", timed(
            lambda *_: "verify_slot", installer.verify_slot)))
        patches.enter_context(mock.patch.object(board, "write", timed(
            lambda part, *_: f"write_{kind(part)}", board.write)))
        t_start = time.perf_counter()
        st.phase, st.version, st.from_version = "downloading", version, "1.0.0"
        state.save(board, st)
        t0 = time.perf_counter()
        tuf = updater.tuf("a")  # shipped root read from the booted rootfs (unsquashfs)
        spans["tuf_client_init"] = time.perf_counter() - t0
        patches.enter_context(mock.patch.object(tuf, "verify", timed(
            lambda target, *_: f"tuf_verify_{kind(target.path)}", tuf.verify)))
        try:
            progress("checking", 0)
            t0 = time.perf_counter()
            tuf.refresh()
            spans["tuf_refresh"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            release = installer.plan(tuf, board, version, None)
            spans["target_lookup"] = time.perf_counter() - t0
            kernel, rootfs, how = installer.fetch(tuf, board, release, "a", progress)
            env = board.read_env()
            assert env is not None
            slot = installer.write_and_verify(board, env, kernel, rootfs, version, progress)
        finally:
            tuf.close()
        t0 = time.perf_counter()
        st.phase, st.slot = "staged", slot
        state.save(board, st)
        installer.stage(board, slot)
        spans["stage"] = time.perf_counter() - t0
        progress("rebooting", 100)
        total = time.perf_counter() - t_start
    end = vm_kib("VmHWM", "VmRSS")
    if not keep_staged:  # undo the staging so the next run starts from the same board
        st.reset()
        state.save(board, st)
        board.write_env(env0)
        installer.clean(board)
    return {"total_s": total, "phases_s": dict(spans), "reports": reports, "how": how,
            "slot": slot, "rootfs_bytes": release.rootfs.length,
            "vmhwm_at_start_kib": start_hwm, "vmhwm_kib": end["VmHWM"],
            "vmrss_at_end_kib": end["VmRSS"]}


def child_download(device: str, server: str, url: str) -> dict[str, Any]:
    """The raw HTTPS transfer: same mTLS context and chunk size, bytes discarded."""
    import httpx

    _, agent = _agent(device, server)
    with httpx.Client(verify=agent._context(), timeout=30.0) as http:
        t0 = time.perf_counter()
        n = 0
        with http.stream("GET", url) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(CHUNK):
                n += len(chunk)
        return {"seconds": time.perf_counter() - t0, "bytes": n}


def child_commit(device: str, server: str) -> dict[str, Any]:
    """After an install left staged: the reboot (boot chain on the new slot), then the
    agent's health check and commit (attest, heartbeat, fuse burn)."""
    board, agent = _agent(device, server)
    t0 = time.perf_counter()
    agent.reboot()
    t1 = time.perf_counter()
    outcome = agent.updater().after_boot()
    t2 = time.perf_counter()
    return {"reboot_s": t1 - t0, "health_check_and_commit_s": t2 - t1,
            "outcome": outcome.to_dict(), "booted_slot": agent.boot.get("slot")}


def child(argv: list[str]) -> None:
    mode, raw = argv
    args = json.loads(raw)
    if mode == "install":
        result = child_install(args["device"], args["server"], args["version"],
                               args["keep_staged"])
    elif mode == "download":
        result = child_download(args["device"], args["server"], args["url"])
    else:
        result = child_commit(args["device"], args["server"])
    print(json.dumps(result))


def in_child(mode: str, **args: Any) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(args)],
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the bench (this process: server, builds, baselines) ---------------------------------
def median_of(runs: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(runs), 4), "best_s": round(min(runs), 4),
            "runs_s": [round(r, 4) for r in runs]}


def repeated(fn: Callable[[], float], repeat: int) -> dict[str, Any]:
    fn()  # warm-up, untimed
    return median_of([fn() for _ in range(repeat)])


def stopwatch(cmd: list[str]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0
    return run


def mib_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / MIB / seconds, 1)


def installs(w: uw.World, device: Path, version: str, repeat: int) -> dict[str, Any]:
    runs = [in_child("install", device=str(device), server=w.server.url, version=version,
                     keep_staged=False) for _ in range(repeat + 1)][1:]  # first: warm-up
    phases = {k: round(statistics.median(r["phases_s"].get(k, 0.0) for r in runs), 4)
              for k in runs[0]["phases_s"]}
    nbytes = int(runs[0]["rootfs_bytes"])
    total = median_of([r["total_s"] for r in runs])
    return {
        "rootfs_bytes": nbytes, "how": runs[0]["how"],
        "total_install": {**total, "MiB_per_s": mib_s(nbytes, total["median_s"])},
        "phases_median_s": phases,
        "progress_reports": {"count": runs[0]["reports"]["count"],
                             "median_s": round(statistics.median(
                                 r["reports"]["seconds"] for r in runs), 4)},
        "peak_rss_kib": max(r["vmhwm_kib"] for r in runs),
        "rss_at_start_kib": max(r["vmhwm_at_start_kib"] for r in runs),
        "peak_rss_runs_kib": [r["vmhwm_kib"] for r in runs],
    }


def run(size_mb: int, small_mb: int, repeat: int, commit: bool) -> dict[str, Any]:
    import update_world as uw

    sha384sum, cp, sync = (shutil.which(t) for t in ("sha384sum", "cp", "sync"))
    if sha384sum is None or cp is None or sync is None:
        raise SystemExit("sha384sum, cp and sync (coreutils) are needed")
    need = 10 * (size_mb + small_mb) * MIB
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if free < need:
        raise SystemExit(f"{need // MIB} MiB of free space needed in {tempfile.gettempdir()}, "
                         f"{free // MIB} MiB free")
    out: dict[str, Any] = {"machine": uw.machine(), "repeat": repeat, "warmup_runs": 1}
    with tempfile.TemporaryDirectory(prefix="edgeward-install-bench-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        with uw.world(tmp) as w:
            out["world_setup_s"] = round(time.perf_counter() - t0, 2)
            sizes = {"small": (small_mb, "1.1.0"), "full": (size_mb, "1.2.0")}
            builds, setup = {}, {}
            for label, (mb, version) in sizes.items():
                tree = tmp / f"tree-{label}"
                uw.random_tree(tree, mb)
                t0 = time.perf_counter()
                builds[label] = w.build(version, 1, tree=tree)
                t1 = time.perf_counter()
                w.publish(builds[label])
                t2 = time.perf_counter()
                shutil.rmtree(tree)
                setup[label] = {"tree_MiB": mb, "version": version,
                                "release_build_s": round(t1 - t0, 2),
                                "publish_upload_s": round(t2 - t1, 2)}
            devices = {label: w.gateway(f"bench-{label}").board.root for label in sizes}
            full = builds["full"].rootfs
            nbytes = full.stat().st_size

            base = {
                "sha384sum": repeated(stopwatch([sha384sum, str(full)]), repeat),
                "cp_and_sync": repeated(stopwatch(
                    ["sh", "-c", f'{cp} "$1" "$2" && {sync} "$2"', "cp", str(full),
                     str(tmp / "copy.img")]), repeat),
            }
            info = builds["full"].info()
            directory, _, file = rootfs_path(uw.MODEL, sizes["full"][1]).rpartition("/")
            url = f"{w.server.url}/v1/gateway/tuf/targets/{directory}/" \
                  f"{info['rootfs_sha384']}.{file}"
            base["https_download_raw"] = repeated(lambda: float(in_child(
                "download", device=str(devices["full"]), server=w.server.url,
                url=url)["seconds"]), repeat)
            (tmp / "copy.img").unlink(missing_ok=True)
            for value in base.values():
                value["MiB_per_s"] = mib_s(nbytes, value["median_s"])

            measured = {label: installs(w, devices[label], version, repeat)
                        for label, (_, version) in sizes.items()}
            after = None
            if commit:
                in_child("install", device=str(devices["full"]), server=w.server.url,
                         version=sizes["full"][1], keep_staged=True)
                after = in_child("commit", device=str(devices["full"]), server=w.server.url)
                after = {k: round(v, 4) if isinstance(v, float) else v
                         for k, v in after.items()}

    f = measured["full"]
    install_s, sha_s = f["total_install"]["median_s"], base["sha384sum"]["median_s"]
    out.update({
        "sizes_MiB": {label: mb for label, (mb, _) in sizes.items()},
        "rootfs_bytes": {label: m["rootfs_bytes"] for label, m in measured.items()},
        "setup": setup,
        "baselines": {"bytes": nbytes, **base},
        "install": measured,
        "total_install_s": install_s,
        "sha384sum_s": sha_s,
        "ratio_install_over_sha384sum": round(install_s / sha_s, 2),
        "ratio_install_over_cp_and_sync": round(install_s / base["cp_and_sync"]["median_s"], 2),
        "install_MiB_per_s": f["total_install"]["MiB_per_s"],
        "peak_rss_kib": {label: m["peak_rss_kib"] for label, m in measured.items()},
        "rss_growth_kib": f["peak_rss_kib"] - measured["small"]["peak_rss_kib"],
        "memory_method": "VmHWM of the child process at the end of the install (the agent's "
                         "process; zstd/unsquashfs subprocesses not included)",
        "after_install": after,
    })
    out["machine"]["loadavg_1m_at_end"] = uw.machine()["loadavg_1m"]
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="rootfs payload in MiB")
    parser.add_argument("--small", type=int, default=None,
                        help="second size for the memory comparison (default --size/8)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: --size 8 --small 2 --repeat 1")
    parser.add_argument("--no-commit", action="store_true",
                        help="skip timing the reboot and the health check + commit")
    args = parser.parse_args()
    if args.quick:
        args.size, args.small, args.repeat = 8, 2, 1
    small = args.small if args.small is not None else max(1, args.size // 8)
    if args.size < 1 or small < 1 or args.repeat < 1:
        parser.error("--size, --small and --repeat must be at least 1")
    start = time.perf_counter()
    result = run(args.size, small, args.repeat, not args.no_commit)
    result["bench_wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
