"""Benchmark what confinement costs an app: start latency, memory, system-call speed.

Usage: ``.venv/bin/python bench/confinement.py [--runs 200] [--isolated-runs 20]
[--gap 0.25] [--apps 10] [--calls 1000000] [--repeat 5] [--quick]`` (as root: the
agent's privilege, which starting sandboxes needs; anything else exits 2).

Prints one JSON object. Every figure has its baseline measured in the same run, on
the same program, with the same ``subprocess`` plumbing (stdio on /dev/null, a new
session), variants interleaved round-robin so that drift touches all of them alike:

1. **Start latency** of ``/bin/true`` (copied into a real app image): bare fork/exec
   against the real ``launch.start()`` path (a ``sandbox.plan`` of a parsed manifest,
   the app's cgroup, seccomp program, ``edgeward-confine enter`` -> bubblewrap with all
   namespaces -> ``edgeward-confine restrict`` -> the program), run to completion. The
   chain is also started a step at a time from outside (enter alone, bubblewrap with
   the same command line but no restrict step, restrict alone, bubblewrap's minimal
   ``--unshare-all --ro-bind / /``, and bubblewrap option variants) and the Python
   side is timed in-process, to say where the time goes. A static program that prints
   CLOCK_MONOTONIC as it starts also gives the time until the app *runs* (and, apart,
   the sandbox's teardown after it exits). Starts are timed back to back (``--runs``)
   and *isolated*, ``--gap`` seconds apart (``--isolated-runs``): joining a cgroup (a
   write to ``cgroup.procs``) waits for an RCU grace period unless another migration
   happened just before, so back-to-back starts hide a cost that an app started on its
   own pays.
2. **Resident memory per app**: ``--apps`` idle confined apps (a tiny static program
   that pauses), each with its own user and cgroup; PSS/USS/RSS of the helper
   processes confinement adds (bubblewrap's monitor and its PID-1 init: nothing of
   Python remains, the helpers exec) from ``/proc/PID/smaps_rollup``, against the same
   program started bare (through ``edgeward-confine enter`` alone, into a cgroup of its
   own, so the cgroups' charges compare: the difference includes the kernel's memory
   for the namespaces and mounts).
3. **System-call-heavy work** under the filters: a tiny static program loops over one
   cheap call and times the loop itself (wall and CPU, from inside), so process start
   stays out of the figure and system-call cost dominates: ``getppid`` (no work in the
   kernel: the entry cost plus the seccomp filter, which the kernel's per-syscall
   action cache skips for calls allowed whatever their arguments), ``open``+``close``
   of a file in the image (path walk plus Landlock's check at every open) and
   ``socket``+``close`` (the one call the allow-list filters on its arguments, so the
   BPF program runs each time). Modes: bare, confined (``launch.start``), confined
   without seccomp, and bubblewrap without the restrict step (no Landlock, no seccomp).

The helper program is C, written and compiled (``cc -static``, as scripts/bootstrap
builds edgeward-confine) into the run's temporary directory. Everything the run makes
(cgroups, processes, directories) is removed at the end, on failure too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.device.apps import cgroups, egress, launch, sandbox, seccomp
from edgeward.trust.appmanifest import AppManifest, parse

UID_BASE = 29900  # the top of the app users' range (users.py counts up from 20000)
AIM_START_MS = 10.0
SETTLE_S = 0.2  # between system-call runs: namespaces are freed by kernel workers after exit
AIM_HELPER_KIB = 1024
ISSUE_REFERENCE_MS = {"bare_true": 0.6, "bwrap_all_namespaces": 5, "snap_run": 140,
                      "flatpak_run": 250, "docker_run": 300}
SMAPS_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Shared_Clean", "Shared_Dirty",
              "Private_Clean", "Private_Dirty", "Swap")

PROGRAM = r"""
/* ewbench: the program bench/confinement.py starts bare and confined. No arguments: exit 0.
 * "idle": pause forever. "stamp": print CLOCK_MONOTONIC (ns) and exit.
 * "getppid|open|socket N [PATH]": N iterations of the call, then print
 * "what N wall_ns cpu_ns" of the loop alone. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) return 0;
    if (strcmp(argv[1], "idle") == 0) for (;;) pause();
    if (strcmp(argv[1], "stamp") == 0) { printf("%lld\n", ns(CLOCK_MONOTONIC)); return 0; }
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    const char *path = argc > 3 ? argv[3] : ".";
    long long w0 = ns(CLOCK_MONOTONIC), c0 = ns(CLOCK_PROCESS_CPUTIME_ID);
    if (strcmp(argv[1], "getppid") == 0) {
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
    } else if (strcmp(argv[1], "open") == 0) {
        for (long i = 0; i < n; i++) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) { perror(path); return 3; }
            close(fd);
        }
    } else if (strcmp(argv[1], "socket") == 0) {
        for (long i = 0; i < n; i++) {
            int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (s < 0) { perror("socket"); return 3; }
            close(s);
        }
    } else {
        return 2;
    }
    long long w1 = ns(CLOCK_MONOTONIC), c1 = ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("%s %ld %lld %lld\n", argv[1], n, w1 - w0, c1 - c0);
    return 0;
}
"""


def say(message: str) -> None:
    print(f"confinement bench: {message}", file=sys.stderr, flush=True)


# --- statistics ----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


def stats_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {"median_ms": round(statistics.median(ms), 3), "p90_ms": round(percentile(ms, 0.9), 3),
            "mean_ms": round(statistics.fmean(ms), 3), "min_ms": round(min(ms), 3),
            "runs": len(ms)}


def compare(bare: dict[str, Any], confined: dict[str, Any]) -> dict[str, Any]:
    """Difference and ratio, computed from the printed (rounded) figures."""
    out: dict[str, Any] = {"difference_ms": {}, "ratio": {}}
    for key in ("median", "p90", "mean"):
        b, c = bare[f"{key}_ms"], confined[f"{key}_ms"]
        out["difference_ms"][key] = round(c - b, 3)
        out["ratio"][key] = round(c / b, 3) if b > 0 else None
    return out


# --- the run's world -----------------------------------------------------------------------
@dataclass
class World:
    root: Path
    image: Path
    confine: Path
    prefix: str
    groups: list[cgroups.AppCgroup] = field(default_factory=list)
    manifests: dict[str, AppManifest] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def true(self) -> Path:
        return self.image / "bin" / "true"

    @property
    def program(self) -> Path:
        return self.image / "bin" / "ewbench"

    def app(self, suffix: str, uid: int, command: list[str], manifest: str = ""
            ) -> tuple[sandbox.Plan, sandbox.AppUser]:
        """A real plan for an app of its own (name, user, data directory, cgroup)."""
        name = f"{self.prefix}{suffix}"
        data = self.root / f"data-{suffix}"
        data.mkdir()
        os.chown(data, uid, uid)
        data.chmod(0o700)
        m = parse(f'name = "{name}"\nversion = "1"\npublisher = "bench"\n'
                  f'summary = "confinement benchmark"\n{manifest}'.encode())
        chosen = sandbox.plan(m, self.image, data, command, None, sandbox.Peripherals())
        self.manifests[name] = m
        self.groups.append(cgroups.existing(name))
        return chosen, sandbox.AppUser(uid, uid)

    def enter(self, user: sandbox.AppUser, group: cgroups.AppCgroup) -> list[str]:
        return [str(self.confine), "enter", str(user.uid), str(user.gid),
                ",".join(str(p) for p in group.procs), "--"]

    def cleanup(self) -> None:
        for group in self.groups:
            cgroups.kill(group)
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.kill()
            with contextlib.suppress(Exception):
                process.wait(timeout=10)
        for group in self.groups:
            deadline = time.monotonic() + 5
            while group.members() and time.monotonic() < deadline:
                time.sleep(0.02)
            cgroups.remove(group)
        shutil.rmtree(self.root, ignore_errors=True)


def make_world(prefix: str) -> World:
    cc = shutil.which("cc")
    if cc is None:
        raise SystemExit("confinement bench: cc is not installed (scripts/bootstrap needs it "
                         "to build edgeward-confine too)")
    # the app users must reach the image and their data (0755 on the way, as in the tests)
    root = Path(tempfile.mkdtemp(prefix="edgeward-bench-confine-", dir="/var/tmp"))
    root.chmod(0o755)
    image = root / "image"
    (image / "bin").mkdir(parents=True)
    world = World(root, image, launch.confine_binary(), prefix)
    try:
        source = root / "ewbench.c"
        source.write_text(PROGRAM)
        built = subprocess.run([cc, "-O2", "-static", "-Wall", "-o", str(world.program),
                                str(source)], capture_output=True, text=True)
        if built.returncode != 0:
            raise SystemExit(f"confinement bench: cannot build the test program:\n"
                             f"{built.stderr}")
        true = shutil.which("true") or "/bin/true"
        shutil.copy(true, world.true)
        for path in (image, image / "bin"):
            path.chmod(0o755)
    except BaseException:
        world.cleanup()
        raise
    return world


def spawn(command: list[str], fds: tuple[int, ...] = (), cwd: Path | None = None,
          stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """What launch.start does with the command line: stdio, passed fds, a new session."""
    return subprocess.Popen(command, pass_fds=fds, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.PIPE if stdout == subprocess.PIPE
                            else subprocess.DEVNULL, cwd=cwd, start_new_session=True)


def check(process: subprocess.Popen[bytes], what: str) -> None:
    code = process.wait()
    if code != 0:
        raise RuntimeError(f"{what} exited {code}")


def split_argv(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """sandbox.argv's command line as (bubblewrap's options, the restrict step, program)."""
    first = argv.index("--")
    second = argv.index("--", first + 1)
    return argv[:first], argv[first + 1:second], argv[second + 1:]


def with_fd(restrict: list[str], fd: int) -> list[str]:
    """The restrict step reading its seccomp filter from ``fd``."""
    return [str(fd) if i > 0 and restrict[i - 1] == "-s" else a
            for i, a in enumerate(restrict)]


def without_seccomp(restrict: list[str]) -> list[str]:
    at = restrict.index("-s")
    return restrict[:at] + restrict[at + 2:]


def without_sys(system: list[str]) -> list[str]:
    """The system view without its /sys bind (which carries every mount below /sys)."""
    out: list[str] = []
    i = 0
    while i < len(system):
        if system[i] == "--ro-bind" and system[i + 1] == "/sys":
            i += 3
            continue
        out += system[i:i + 3]
        i += 3
    return out


def usr_etc_only(system: list[str]) -> list[str]:
    """The system view with only /usr and /etc bound (and the top-level symbolic links):
    what the base Landlock rules can allow at all."""
    out: list[str] = []
    for i in range(0, len(system), 3):
        if system[i] == "--symlink" or system[i + 1] in ("/usr", "/etc"):
            out += system[i:i + 3]
    return out


def chain(world: World, plan: sandbox.Plan, user: sandbox.AppUser,
          group: cgroups.AppCgroup, *, restrict: bool = True, filtered: bool = True,
          extra: tuple[str, ...] = (), system: list[str] | None = None,
          program: list[str] | None = None) -> Callable[..., subprocess.Popen[bytes]]:
    """Starts of launch.start's own command line, made once beforehand (only the seccomp
    pipe is new at each start), or of a variant of it."""
    system = sandbox.system_view() if system is None else system
    options, step, argv = split_argv(sandbox.argv(plan, world.confine, -1, system))
    if program is not None:
        argv = program
    if not filtered:
        step = without_seccomp(step)
    head = [*world.enter(user, group), *options, *extra, "--"]

    def start(stdout: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        fd = seccomp.pipe(plan.complain)
        try:
            tail = [*with_fd(step, fd), "--", *argv] if restrict else argv
            return spawn([*head, *tail], (fd,), stdout=stdout)
        finally:
            os.close(fd)
    return start


Variant = Callable[[], dict[str, float] | None]


def interleaved(variants: dict[str, Variant], runs: int, warmup: int,
                gap: float = 0.0) -> dict[str, list[float]]:
    """Seconds per run of each variant, round-robin: its wall time, or the figures it
    measured itself (a dict of series names to seconds)."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, fn in variants.items():
            if gap:
                time.sleep(gap)
            t0 = time.perf_counter()
            own = fn()
            wall = time.perf_counter() - t0
            for series, seconds in (own or {name: wall}).items():
                times.setdefault(series, []).append(seconds)
    return times


def in_process(fn: Callable[[], object], runs: int) -> dict[str, Any]:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return stats_ms(times)


def pids_charged(group: cgroups.AppCgroup) -> int | None:
    for path in group.paths:
        with contextlib.suppress(OSError, ValueError):
            return int((path / "pids.current").read_text())
    return None


# --- 1. start latency ----------------------------------------------------------------------
def start_latency(world: World, runs: int, isolated_runs: int, gap: float) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    # all cores: the quota is not what is measured; pids: a PID namespace's init stays
    # charged to the pids controller a while after it exits (see pids_left_charged)
    resources = f"[resources]\ncpu = {float(cpus)}\npids = 4096\n"
    plan, user = world.app("lat", UID_BASE, ["bin/true"], resources)
    net_plan, net_user = world.app("net", UID_BASE + 1, ["bin/true"],
                                   'plugs = ["network"]\n' + resources
                                   + '[egress]\nallow = ["127.0.0.1/32:9"]\n')
    group = launch.prepare(plan)
    network: str | None = None
    try:
        launch.prepare(net_plan)
    except Exception as e:  # a host without cgroup v2 has no egress filter: said so
        network = f"unavailable: {e}"

    def launched(p: sandbox.Plan, u: sandbox.AppUser) -> Variant:
        def run() -> None:
            started = launch.start(p, u, subprocess.DEVNULL, subprocess.DEVNULL)
            check(started.process, f"launch.start({p.app})")
        return run

    def waited(start: Callable[[], subprocess.Popen[bytes]], what: str) -> Variant:
        def run() -> None:
            check(start(), what)
        return run

    def stamped(start: Callable[[], subprocess.Popen[bytes]], what: str) -> Variant:
        """The static program prints CLOCK_MONOTONIC as it starts: until it runs, and
        until the start is over (the sandbox torn down, for a confined one)."""
        def run() -> dict[str, float]:
            t0 = time.monotonic_ns()
            process = start()
            out, _ = process.communicate()
            end = time.monotonic_ns()
            if process.returncode != 0:
                raise RuntimeError(f"{what} exited {process.returncode}")
            running = int(out.split()[0])
            return {f"{what}_until_running": (running - t0) / 1e9,
                    f"{what}_until_exited": (end - t0) / 1e9}
        return run

    stamp_plan = dataclasses.replace(plan, command=("bin/ewbench", "stamp"))

    fd = seccomp.pipe()
    system = sandbox.system_view()
    _, restrict_step, _ = split_argv(sandbox.argv(plan, world.confine, fd, system))
    os.close(fd)
    true_inside = [f"{sandbox.IMAGE_VIEW}/bin/true"]
    minimal = [sandbox.bwrap(), "--unshare-all", "--ro-bind", "/", "/", str(world.true)]

    # outside the sandbox, as root: the image where it is on the host
    outside = [str(world.image) if a == sandbox.IMAGE_VIEW else a for a in restrict_step[1:]]

    def restrict_alone() -> None:
        fd = seccomp.pipe()
        try:
            process = spawn([str(world.confine), *with_fd(outside, fd), "--", str(world.true)],
                            (fd,))
        finally:
            os.close(fd)
        check(process, "restrict alone")

    variants: dict[str, Variant] = {
        "bare": waited(lambda: spawn([str(world.true)]), "bare"),
        "confined_launch_start": launched(plan, user),
        "chain_prepared": waited(chain(world, plan, user, group), "chain"),
        "bwrap_no_restrict": waited(chain(world, plan, user, group, restrict=False,
                                          program=true_inside), "bwrap"),
        "enter_only": waited(lambda: spawn([*world.enter(user, group), str(world.true)]),
                             "enter"),
        "restrict_only_as_root": restrict_alone,
        "bwrap_minimal_as_root": waited(lambda: spawn(minimal), "bwrap minimal"),  # the issue's
        "bwrap_minimal_as_root_share_net": waited(
            lambda: spawn([*minimal[:2], "--share-net", *minimal[2:]]), "bwrap share-net"),
        "bwrap_minimal_as_app_user": waited(lambda: spawn([*world.enter(user, group),
                                                           *minimal]), "bwrap as user"),
        "bwrap_no_restrict_share_net": waited(chain(
            world, plan, user, group, restrict=False, program=true_inside,
            extra=("--share-net",)), "bwrap share-net"),
        "bwrap_no_restrict_without_sys_bind": waited(chain(
            world, plan, user, group, restrict=False, program=true_inside,
            system=without_sys(system)), "bwrap without /sys"),
        "bwrap_no_restrict_usr_etc_only": waited(chain(
            world, plan, user, group, restrict=False, program=true_inside,
            system=usr_etc_only(system)), "bwrap /usr and /etc only"),
        "bwrap_mount_namespace_only_as_root": waited(
            lambda: spawn([minimal[0], *minimal[2:]]), "bwrap without namespaces"),
        "static_bare": stamped(lambda: spawn([str(world.program), "stamp"],
                                             stdout=subprocess.PIPE), "static_bare"),
        "static_confined": stamped(lambda: launch.start(
            stamp_plan, user, subprocess.PIPE, subprocess.PIPE).process, "static_confined"),
    }
    if network is None:
        variants["confined_launch_start_network"] = launched(net_plan, net_user)
    say(f"start latency: {len(variants)} variants x {runs} runs, back to back")
    times = interleaved(variants, runs, warmup=min(3, runs))
    steps = {name: stats_ms(values) for name, values in times.items()}
    left = pids_charged(group)
    t0 = time.monotonic()
    while (pids_charged(group) or 0) > 0 and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    drained = round(time.monotonic() - t0, 3)

    isolated_variants = {name: variants[name] for name in
                         ("bare", "confined_launch_start", "enter_only",
                          "bwrap_minimal_as_root", "bwrap_no_restrict", "static_bare",
                          "static_confined")}
    say(f"start latency: {len(isolated_variants)} variants x {isolated_runs} runs, "
        f"{gap}s apart")
    isolated_times = interleaved(isolated_variants, isolated_runs, warmup=0, gap=gap)
    isolated = {name: stats_ms(values) for name, values in isolated_times.items()}

    say("start latency: the Python side, in-process")
    n = max(3, runs // 2)
    gids = [user.gid]
    manifest = world.manifests[plan.app]
    python_side: dict[str, Any] = {
        "sandbox_plan": in_process(lambda: sandbox.plan(
            manifest, plan.image, plan.data, list(plan.command), None,
            sandbox.Peripherals()), n),
        "prepare_cgroup_and_limits": in_process(lambda: launch.prepare(plan), n),
        "seccomp_pipe_cached": in_process(lambda: os.close(seccomp.pipe()), n),
        "sandbox_argv_with_system_view": in_process(
            lambda: sandbox.argv(plan, world.confine, 3), n),
        "lookups_confine_binary_and_groups": in_process(
            lambda: (launch.confine_binary(), launch.groups(plan.rules.groups), gids), n),
    }

    def compile_seccomp() -> None:
        seccomp.program.cache_clear()
        seccomp.program()

    python_side["seccomp_compile_first_call_only"] = in_process(compile_seccomp,
                                                                min(n, 20))
    if network is None:
        python_side["prepare_network_cgroup_and_egress_attach"] = in_process(
            lambda: launch.prepare(net_plan), n)
        allowed = list(egress.resolve(net_plan.egress))
        net_group = cgroups.existing(net_plan.app)
        if net_group.unified is not None:
            unified = net_group.unified
            python_side["egress_attach_alone"] = in_process(
                lambda: egress.attach(unified, allowed), n)
    per_start = ("sandbox_plan", "prepare_cgroup_and_limits", "seccomp_pipe_cached",
                 "sandbox_argv_with_system_view", "lookups_confine_binary_and_groups")
    python_total = round(sum(python_side[k]["median_ms"] for k in per_start), 3)

    def med(name: str, table: dict[str, Any] = steps) -> float:
        return float(table[name]["median_ms"])

    breakdown = {
        "bare_exec": med("bare"),
        "python_side": python_total,
        "enter_cgroup_join_and_setuid": round(med("enter_only") - med("bare"), 3),
        "bubblewrap": round(med("bwrap_no_restrict") - med("enter_only"), 3),
        "restrict_landlock_seccomp": round(med("chain_prepared") - med("bwrap_no_restrict"),
                                           3),
    }
    breakdown["sum_of_steps"] = round(sum(breakdown.values()), 3)
    breakdown["measured_launch_start"] = med("confined_launch_start")
    options = {
        "new_network_namespace": round(med("bwrap_no_restrict")
                                       - med("bwrap_no_restrict_share_net"), 3),
        "sys_bind_with_its_submounts": round(med("bwrap_no_restrict")
                                             - med("bwrap_no_restrict_without_sys_bind"), 3),
        "top_level_binds_beyond_usr_etc": round(med("bwrap_no_restrict")
                                                - med("bwrap_no_restrict_usr_etc_only"), 3),
        "namespaces_over_mount_namespace_only_as_root": round(
            med("bwrap_minimal_as_root") - med("bwrap_mount_namespace_only_as_root"), 3),
        "full_command_line_over_minimal_as_user": round(
            med("bwrap_no_restrict") - med("bwrap_minimal_as_app_user"), 3),
        "minimal_as_user_over_as_root_incl_enter": round(
            med("bwrap_minimal_as_app_user") - med("bwrap_minimal_as_root"), 3),
        "restrict_alone_over_bare": round(med("restrict_only_as_root") - med("bare"), 3),
    }
    back = {"bare": steps["bare"], "confined": steps["confined_launch_start"],
            **compare(steps["bare"], steps["confined_launch_start"])}
    alone = {"bare": isolated["bare"], "confined": isolated["confined_launch_start"],
             **compare(isolated["bare"], isolated["confined_launch_start"])}
    isolated_breakdown = {
        "enter_cgroup_join_and_setuid": round(med("enter_only", isolated)
                                              - med("bare", isolated), 3),
        "cgroup_join_cold_over_warm": round(
            (med("enter_only", isolated) - med("bare", isolated))
            - (med("enter_only") - med("bare")), 3),
        "bubblewrap": round(med("bwrap_no_restrict", isolated)
                            - med("enter_only", isolated), 3),
    }

    def until_running(table: dict[str, Any]) -> dict[str, Any]:
        bare_, confined_ = (table["static_bare_until_running"],
                            table["static_confined_until_running"])
        out = {"bare": bare_, "confined": confined_, **compare(bare_, confined_)}
        out["aim_met"] = out["difference_ms"]["median"] <= AIM_START_MS
        out["confined_until_exited"] = table["static_confined_until_exited"]
        out["bare_until_exited"] = table["static_bare_until_exited"]
        out["confined_exit_after_running_median_ms"] = round(
            table["static_confined_until_exited"]["median_ms"] - confined_["median_ms"], 3)
        return out

    result: dict[str, Any] = {
        "program": "/bin/true, copied into the app image (bare: run from there)",
        "aim": f"a confined start within {AIM_START_MS:g} ms of bare exec (median)",
        "back_to_back": {**back, "aim_met": back["difference_ms"]["median"] <= AIM_START_MS},
        "isolated": {**alone, "gap_s": gap,
                     "aim_met": alone["difference_ms"]["median"] <= AIM_START_MS,
                     "breakdown_median_ms": isolated_breakdown},
        "until_program_runs": {
            "what": "the static test program prints CLOCK_MONOTONIC as soon as it runs: from "
                    "before launch.start (or Popen) until then, and until the start is over "
                    "(for a confined app that includes tearing its sandbox down)",
            "back_to_back": until_running(steps),
            "isolated": until_running(isolated),
        },
        "breakdown_median_ms": breakdown,
        "breakdown_note": "differences of medians of steps started from outside "
                          "(back to back): enter = enter->true minus bare; bubblewrap = "
                          "enter->bwrap->true minus enter->true; restrict = the whole "
                          "prepared chain minus enter->bwrap->true; they need not add up "
                          "exactly to the measured launch.start",
        "bwrap_option_costs_median_ms": options,
        "steps": steps,
        "isolated_steps": isolated,
        "python_side": python_side,
        "pids_left_charged": {"right_after_the_runs": left, "seconds_to_drain": drained,
                              "note": "each start through a PID namespace leaves a "
                                      "charge in the pids controller for a while after "
                                      "it exits"},
        "issue_reference_ms": {**ISSUE_REFERENCE_MS, "note": "from the issue, not "
                                                             "measured here"},
    }
    if network is not None:
        result["network_variant"] = network
    else:
        net = steps["confined_launch_start_network"]
        result["network_app"] = {"confined": net, **compare(steps["bare"], net),
                                 "note": "plugs network with one egress entry: the "
                                         "egress filter is attached at every start, and "
                                         "bubblewrap shares the host's network"}
    return result


# --- 2. memory -----------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(x) for x in text.split()]
    except FileNotFoundError:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
        return found


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def smaps(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in SMAPS_KEYS:
            out[key] = int(rest.split()[0])
    out["Uss"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
    return out


def tree(pid: int, leaf: str, timeout: float = 10.0) -> list[int]:
    """[pid, ..., the process running ``leaf``] once the program has been exec'd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chain_ = [pid]
        while comm(chain_[-1]) != leaf:
            below = children(chain_[-1])
            if not below:
                break
            chain_.append(below[0])
        if comm(chain_[-1]) == leaf:
            return chain_
        time.sleep(0.01)
    raise RuntimeError(f"process {pid} did not reach {leaf}")


def cgroup_memory(group: cgroups.AppCgroup) -> dict[str, int] | None:
    for path in group.paths:
        for name in ("memory.current", "memory.usage_in_bytes"):
            with contextlib.suppress(OSError, ValueError):
                out = {"charged_bytes": int((path / name).read_text())}
                with contextlib.suppress(OSError, ValueError):
                    out["kmem_bytes"] = int((path / "memory.kmem.usage_in_bytes")
                                            .read_text())
                with contextlib.suppress(OSError):
                    for line in (path / "memory.stat").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key in ("anon", "file", "kernel", "kernel_stack", "pagetables",
                                   "slab", "sock", "rss", "cache", "mapped_file", "shmem"):
                            out[key] = int(value)
                return out
    return None


def mean_of(rows: list[dict[str, int]], key: str) -> float:
    return round(statistics.fmean(r.get(key, 0) for r in rows), 1)


def memory(world: World, apps: int) -> dict[str, Any]:
    say(f"memory: {apps} idle apps confined and {apps} bare")
    leaf = world.program.name
    confined, bare = [], []
    for i in range(apps):
        plan, user = world.app(f"idle-{i}", UID_BASE + 10 + i, ["bin/ewbench", "idle"])
        started = launch.start(plan, user, subprocess.DEVNULL, subprocess.DEVNULL)
        world.processes.append(started.process)
        confined.append((started, plan))
    for i in range(apps):
        group = cgroups.create(f"{world.prefix}bare-{i}", 64 << 20, 0.5, 64)
        world.groups.append(group)
        user = sandbox.AppUser(UID_BASE + 10 + i, UID_BASE + 10 + i)
        process = spawn([*world.enter(user, group), str(world.program), "idle"])
        world.processes.append(process)
        bare.append((process, group))
    helpers, programs, bare_rows = [], [], []
    charged_confined, charged_bare = [], []
    processes_per_app = set()
    for started, _ in confined:
        pids = tree(started.process.pid, leaf)
        processes_per_app.add(len(pids))
        rows = [smaps(pid) for pid in pids[:-1]]
        helpers.append({k: sum(r.get(k, 0) for r in rows) for k in (*SMAPS_KEYS, "Uss")})
        programs.append(smaps(pids[-1]))
        charge = cgroup_memory(started.group)
        if charge is not None:
            charged_confined.append(charge)
    for process, group in bare:
        pids = tree(process.pid, leaf)
        bare_rows.append(smaps(pids[-1]))
        charge = cgroup_memory(group)
        if charge is not None:
            charged_bare.append(charge)

    def summary(rows: list[dict[str, int]]) -> dict[str, float]:
        return {f"{k.lower()}_kib": mean_of(rows, k) for k in ("Rss", "Pss", "Uss")}

    helper = summary(helpers)
    result: dict[str, Any] = {
        "apps": apps,
        "program": "a static C program that pauses (bare: the same file, started through "
                   "edgeward-confine enter alone, so as its own user in a cgroup of its own)",
        "processes_per_confined_app": sorted(processes_per_app),
        "helper_processes": "bubblewrap's monitor (outside) and its PID-1 init (inside); "
                            "edgeward-confine execs bubblewrap and then the program",
        "helpers_per_app_mean": helper,
        "helpers_per_app_max_pss_kib": max(h.get("Pss", 0) for h in helpers),
        "confined_program_mean": summary(programs),
        "bare_program_mean": summary(bare_rows),
        "aim": f"under {AIM_HELPER_KIB} KiB of resident helper memory per app",
        "aim_met_pss": helper["pss_kib"] < AIM_HELPER_KIB,
        "aim_met_uss": helper["uss_kib"] < AIM_HELPER_KIB,
        "ratio_helpers_pss_over_bare_program_pss": (
            round(helper["pss_kib"] / summary(bare_rows)["pss_kib"], 3)
            if summary(bare_rows)["pss_kib"] > 0 else None),
        "method": "/proc/PID/smaps_rollup with all apps running: RSS counts shared pages in "
                  "full, PSS divides them among the processes sharing them, USS "
                  "(Private_Clean + Private_Dirty) is what would be freed with the app",
    }
    if charged_confined and charged_bare:
        mean_confined = round(statistics.fmean(c["charged_bytes"] for c in charged_confined))
        mean_bare = round(statistics.fmean(c["charged_bytes"] for c in charged_bare))
        result["cgroup_charged"] = {
            "confined_mean_kib": round(mean_confined / 1024, 1),
            "bare_mean_kib": round(mean_bare / 1024, 1),
            "added_per_app_kib": round((mean_confined - mean_bare) / 1024, 1),
            "confined_stat_mean_kib": {k: round(statistics.fmean(c.get(k, 0)
                                                                 for c in charged_confined)
                                                / 1024, 1)
                                       for k in charged_confined[0] if k != "charged_bytes"},
            "bare_stat_mean_kib": {k: round(statistics.fmean(c.get(k, 0) for c in charged_bare)
                                            / 1024, 1)
                                   for k in charged_bare[0] if k != "charged_bytes"},
            "note": "what the memory controller charged to each app's cgroup: user pages "
                    "first touched there and the kernel memory its processes allocated "
                    "(namespaces, mounts, page tables); file pages already cached elsewhere "
                    "are not charged again. Approximate: the kernel charges in per-CPU "
                    "batches (up to 64 pages kept per CPU) and memory.stat is flushed "
                    "lazily, so small counters may read 0; the mean over the apps evens "
                    "most of that out",
        }
    else:
        result["cgroup_charged"] = "not readable on this host"
    for started, _ in confined:
        cgroups.kill(started.group)
    for _, group in bare:
        cgroups.kill(group)
    for started, _ in confined:
        started.process.wait(timeout=10)
    for process, _ in bare:
        process.wait(timeout=10)
    return result


# --- 3. system calls -----------------------------------------------------------------------
WORKLOADS = (("getppid", 1.0, None), ("open", 0.2, "bin/ewbench"), ("socket", 0.1, None))


def parse_loop(out: bytes, what: str) -> tuple[float, float]:
    words = out.decode().split()
    if len(words) != 4 or words[0] != what:
        raise RuntimeError(f"{what}: unexpected output {out!r}")
    n, wall, cpu = int(words[1]), int(words[2]), int(words[3])
    return wall / n, cpu / n


def workload(world: World, plan: sandbox.Plan, user: sandbox.AppUser,
             group: cgroups.AppCgroup, args: list[str], repeat: int) -> dict[str, Any]:
    """One loop program in the four modes, interleaved; median ns per iteration."""
    what = args[0]
    inside = [f"{sandbox.IMAGE_VIEW}/bin/ewbench", *args]
    variant = dataclasses.replace(plan, command=("bin/ewbench", *args))
    unfiltered = chain(world, plan, user, group, filtered=False, program=inside)
    unrestricted = chain(world, plan, user, group, restrict=False, program=inside)
    starts: dict[str, Callable[[], subprocess.Popen[bytes]]] = {
        "bare": lambda: spawn([str(world.program), *args], cwd=world.image,
                              stdout=subprocess.PIPE),
        "confined": lambda: launch.start(variant, user, subprocess.PIPE,
                                         subprocess.PIPE).process,
        "confined_without_seccomp": lambda: unfiltered(subprocess.PIPE),
        "bwrap_without_restrict": lambda: unrestricted(subprocess.PIPE),
    }

    def once(name: str) -> tuple[float, float]:
        time.sleep(SETTLE_S)  # the last sandbox's namespaces are torn down after it
        process = starts[name]()
        out, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"{what} {name} exited {process.returncode}: {err!r}")
        return parse_loop(out, what)

    for name in starts:  # warm-up
        once(name)
    per_call: dict[str, list[tuple[float, float]]] = {name: [] for name in starts}
    for _ in range(repeat):
        for name in starts:
            per_call[name].append(once(name))
    wall, cpu = "wall_ns_per_iteration", "cpu_ns_per_iteration"
    figures = {name: {wall: round(statistics.median(w for w, _ in v), 1),
                      cpu: round(statistics.median(c for _, c in v), 1), "runs": len(v)}
               for name, v in per_call.items()}

    def fig(name: str, key: str) -> float:
        return float(figures[name][key])

    return {
        "iterations": int(args[1]),
        "calls_per_iteration": 1 if what == "getppid" else 2,
        **figures,
        "ratio_confined_over_bare": {
            "wall": round(fig("confined", wall) / fig("bare", wall), 3),
            "cpu": round(fig("confined", cpu) / fig("bare", cpu), 3)},
        "ratio_without_seccomp_over_bare": {
            "wall": round(fig("confined_without_seccomp", wall) / fig("bare", wall), 3),
            "cpu": round(fig("confined_without_seccomp", cpu) / fig("bare", cpu), 3)},
        "added_cpu_ns_per_iteration": {
            "seccomp_filter": round(fig("confined", cpu)
                                    - fig("confined_without_seccomp", cpu), 1),
            "landlock_and_no_new_privs": round(fig("confined_without_seccomp", cpu)
                                               - fig("bwrap_without_restrict", cpu), 1),
            "namespaces_user_cgroup": round(fig("bwrap_without_restrict", cpu)
                                            - fig("bare", cpu), 1)},
    }


def syscalls(world: World, calls: int, repeat: int) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    plan, user = world.app("sys", UID_BASE + 2, ["bin/ewbench"],
                           f"[resources]\ncpu = {float(cpus)}\npids = 4096\n")
    group = launch.prepare(plan)
    result: dict[str, Any] = {
        "why": "each program times its own loop (clock_gettime around it, wall and "
               "CPU), so only system calls are measured: getppid does no work in the "
               "kernel (entry cost + filter; allowed whatever its arguments, so the "
               "kernel's seccomp action cache answers without running the BPF program); "
               "open+close of a file in the image adds the path walk and Landlock's check "
               "at each open; socket+close (AF_UNIX datagram) is the one call the filter "
               "checks by argument, so its BPF program runs at every call",
        "modes": "bare; confined (launch.start); confined_without_seccomp (the same "
                 "command line without restrict's -s); bwrap_without_restrict (namespaces, "
                 "user and cgroup only: no no_new_privs, Landlock or seccomp)",
        "seccomp_filter_instructions": len(seccomp.program()) // 8,
        "cpu_quota": f"{float(cpus)} cores (all): the quota is not what is measured",
        "settle_s_before_each_run": SETTLE_S,
        "workloads": {},
    }
    for what, share, path in WORKLOADS:
        n = max(1000, int(calls * share))
        say(f"system calls: {what} x {n}, 4 modes x {repeat}")
        args = [what, str(n), *([path] if path else [])]
        result["workloads"][what] = workload(world, plan, user, group, args, repeat)
    return result


# --- environment ---------------------------------------------------------------------------
def audit_overhead(world: World, calls: int, repeat: int) -> dict[str, Any]:
    """What the agent's audit rules cost the *rest* of the gateway: the same loops, as root
    outside any sandbox, with no rules, with the deny rules alone (every process then
    keeps an audit context), and with the deny rules and the never,task rules the agent
    loads with them (no context for anyone but the apps' users)."""
    from edgeward.device.apps.audit import Audit
    from edgeward.device.apps.monitor import deny_rules, quiet_rules

    setups = {"no_rules": [], "deny_rules_only": deny_rules(),
              "as_the_agent_loads_them": quiet_rules() + deny_rules()}
    loops = {"getppid": [str(calls)], "open": [str(max(1, calls // 5)), str(world.program)]}
    out: dict[str, Any] = {"why": audit_overhead.__doc__, "loops": {}}
    with Audit() as audit:
        before = audit.enable()
        try:
            for name, rules in setups.items():
                for rule in quiet_rules() + deny_rules():
                    audit.remove(rule)
                for rule in rules:
                    audit.add(rule)
                for what, args in loops.items():
                    runs = []
                    for _ in range(repeat):
                        process = spawn([str(world.program), what, *args],
                                        stdout=subprocess.PIPE)  # a new process: new context
                        stdout, _ = process.communicate()
                        runs.append(parse_loop(stdout, what)[1])
                    out["loops"].setdefault(what, {})[name] = round(statistics.median(runs), 1)
        finally:
            for rule in quiet_rules() + deny_rules():
                audit.remove(rule)
            if before == 0:
                audit.set_enabled(0)
    for row in out["loops"].values():
        row["ratio_agent_over_no_rules"] = round(
            row["as_the_agent_loads_them"] / row["no_rules"], 3)
    out["unit"] = "CPU ns per iteration, median"
    return out


def first_line(path: str) -> str | None:
    try:
        return Path(path).read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None


def environment() -> dict[str, Any]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor() or "unknown")
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    cgroup_mounts = [m for m in mounts if m[2] in ("cgroup", "cgroup2")]
    bwrap = subprocess.run([sandbox.bwrap(), "--version"], capture_output=True, text=True)
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "cgroup_version": cgroups.version(),
        "cgroup_v2_beside_v1": any(m[2] == "cgroup2" for m in cgroup_mounts)
        and cgroups.version() == 1,
        "cgroup_favordynmods": any("favordynmods" in m[3] for m in cgroup_mounts),
        "landlock_abi": launch.landlock_abi(),
        "bubblewrap": bwrap.stdout.strip(),
        "spec_store_bypass": first_line(
            "/sys/devices/system/cpu/vulnerabilities/spec_store_bypass"),
        "loadavg_at_start": first_line("/proc/loadavg"),
        "python": platform.python_version(),
    }


# --- main ----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="back-to-back starts per variant")
    parser.add_argument("--isolated-runs", type=int, default=20,
                        help="isolated starts per variant")
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between isolated starts")
    parser.add_argument("--apps", type=int, default=10, help="idle apps for the memory figures")
    parser.add_argument("--calls", type=int, default=1_000_000,
                        help="getppid calls per run (open: a fifth, socket: a tenth)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per system-call mode")
    parser.add_argument("--quick", action="store_true", help="a few runs of everything")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.isolated_runs, args.gap = 8, 2, 0.1
        args.apps, args.calls, args.repeat = 2, 20_000, 1
    if min(args.runs, args.isolated_runs, args.apps, args.calls, args.repeat) < 1:
        parser.error("counts must be at least 1")
    if os.geteuid() != 0:
        print("confinement bench: needs root (the agent's privilege: it makes cgroups and "
              "starts sandboxes as the apps' users)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on the way out
    begin = time.perf_counter()
    world = make_world(f"ewb{os.getpid()}-")
    try:
        result: dict[str, Any] = {
            "environment": environment(),
            "settings": {k: v for k, v in vars(args).items()},
        }
        result["start_latency"] = start_latency(world, args.runs, args.isolated_runs,
                                                args.gap)
        result["memory"] = memory(world, args.apps)
        result["syscalls"] = syscalls(world, args.calls, args.repeat)
        result["audit_overhead_on_other_processes"] = audit_overhead(world, args.calls,
                                                                     args.repeat)
    finally:
        world.cleanup()
    result["bench_wall_s"] = round(time.perf_counter() - begin, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
