"""The confinement benchmark keeps working (a ``--quick`` run; no figure is asserted, only
that every one is there, positive and consistent with the others it prints)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root, require_tool

BENCH = Path(__file__).resolve().parents[2] / "bench" / "confinement.py"
STATS = ("median_ms", "p90_ms", "mean_ms", "min_ms")


def need_root() -> None:
    require_root("the benchmark starts sandboxes, which")


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    require_tool("bwrap")
    require_tool("cc")
    need_root()
    out = subprocess.run([sys.executable, str(BENCH), "--quick"], check=True,
                         capture_output=True, text=True, timeout=600)
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def check_stats(stats: dict[str, Any]) -> None:
    assert all(stats[key] > 0 for key in STATS), stats
    assert stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    assert stats["runs"] >= 1


def check_comparison(table: dict[str, Any], bare: str = "bare",
                     confined: str = "confined") -> None:
    for key in ("median", "p90", "mean"):
        b, c = table[bare][f"{key}_ms"], table[confined][f"{key}_ms"]
        assert table["difference_ms"][key] == pytest.approx(c - b, abs=2e-3)
        assert table["ratio"][key] == pytest.approx(c / b, abs=2e-3)


def test_environment_is_described(result: dict[str, Any]) -> None:
    env = result["environment"]
    assert env["kernel"] and env["cpus"] >= 1 and env["cgroup_version"] in (1, 2)
    assert isinstance(env["landlock_abi"], int) and env["landlock_abi"] >= 1
    assert env["bubblewrap"].startswith("bubblewrap")
    assert result["settings"]["quick"] is True and result["bench_wall_s"] > 0


def test_start_latency_has_every_figure(result: dict[str, Any]) -> None:
    start = result["start_latency"]
    for mode in ("back_to_back", "isolated"):
        table = start[mode]
        check_stats(table["bare"])
        check_stats(table["confined"])
        check_comparison(table)
        assert table["aim_met"] == (table["difference_ms"]["median"] <= 10)
    assert start["isolated"]["bare"] == start["isolated_steps"]["bare"]
    assert start["back_to_back"]["confined"] == start["steps"]["confined_launch_start"]
    assert set(start["steps"]) >= {
        "bare", "confined_launch_start", "chain_prepared", "bwrap_no_restrict", "enter_only",
        "restrict_only_as_root", "bwrap_minimal_as_root", "bwrap_minimal_as_root_share_net",
        "bwrap_minimal_as_app_user", "bwrap_no_restrict_share_net",
        "bwrap_no_restrict_without_sys_bind", "bwrap_no_restrict_usr_etc_only",
        "bwrap_mount_namespace_only_as_root", "static_bare_until_running",
        "static_bare_until_exited", "static_confined_until_running",
        "static_confined_until_exited"}
    for stats in (*start["steps"].values(), *start["isolated_steps"].values()):
        check_stats(stats)
    for mode in ("back_to_back", "isolated"):
        table = start["until_program_runs"][mode]
        check_comparison(table)
        assert table["aim_met"] == (table["difference_ms"]["median"] <= 10)
        check_stats(table["confined_until_exited"])
        check_stats(table["bare_until_exited"])
        assert table["confined_exit_after_running_median_ms"] == pytest.approx(
            table["confined_until_exited"]["median_ms"] - table["confined"]["median_ms"],
            abs=2e-3)
    steps = {name: stats["median_ms"] for name, stats in start["steps"].items()}
    parts = start["breakdown_median_ms"]
    assert parts["bare_exec"] == steps["bare"]
    assert parts["measured_launch_start"] == steps["confined_launch_start"]
    assert parts["enter_cgroup_join_and_setuid"] == pytest.approx(
        steps["enter_only"] - steps["bare"], abs=2e-3)
    assert parts["bubblewrap"] == pytest.approx(
        steps["bwrap_no_restrict"] - steps["enter_only"], abs=2e-3)
    assert parts["restrict_landlock_seccomp"] == pytest.approx(
        steps["chain_prepared"] - steps["bwrap_no_restrict"], abs=2e-3)
    assert parts["sum_of_steps"] == pytest.approx(
        sum(v for k, v in parts.items() if k not in ("sum_of_steps", "measured_launch_start")),
        abs=5e-3)
    python = start["python_side"]
    for key in ("sandbox_plan", "prepare_cgroup_and_limits", "seccomp_pipe_cached",
                "sandbox_argv_with_system_view", "lookups_confine_binary_and_groups",
                "seccomp_compile_first_call_only"):
        check_stats(python[key])
    assert parts["python_side"] > 0
    assert set(start["bwrap_option_costs_median_ms"]) >= {
        "new_network_namespace", "sys_bind_with_its_submounts", "restrict_alone_over_bare",
        "top_level_binds_beyond_usr_etc", "namespaces_over_mount_namespace_only_as_root"}
    assert set(start["isolated"]["breakdown_median_ms"]) >= {
        "enter_cgroup_join_and_setuid", "cgroup_join_cold_over_warm", "bubblewrap"}
    if "network_app" in start:  # needs cgroup v2 (or the unified hierarchy beside v1)
        check_stats(start["network_app"]["confined"])
        table = {"bare": start["steps"]["bare"], **start["network_app"]}
        check_comparison(table)
        check_stats(python["prepare_network_cgroup_and_egress_attach"])
    else:
        assert start["network_variant"].startswith("unavailable")


def test_memory_has_every_figure(result: dict[str, Any]) -> None:
    mem = result["memory"]
    assert mem["apps"] == 2
    assert all(n >= 2 for n in mem["processes_per_confined_app"])  # helpers + the program
    for key in ("helpers_per_app_mean", "confined_program_mean", "bare_program_mean"):
        figures = mem[key]
        assert 0 < figures["uss_kib"] <= figures["pss_kib"] <= figures["rss_kib"], figures
    helpers = mem["helpers_per_app_mean"]
    assert mem["aim_met_pss"] == (helpers["pss_kib"] < 1024)
    assert mem["aim_met_uss"] == (helpers["uss_kib"] < 1024)
    assert mem["ratio_helpers_pss_over_bare_program_pss"] == pytest.approx(
        helpers["pss_kib"] / mem["bare_program_mean"]["pss_kib"], abs=2e-3)
    charged = mem["cgroup_charged"]
    if isinstance(charged, dict):
        assert charged["confined_mean_kib"] > 0 and charged["bare_mean_kib"] > 0
        assert charged["added_per_app_kib"] == pytest.approx(
            charged["confined_mean_kib"] - charged["bare_mean_kib"], abs=0.2)


def test_syscall_slowdown_has_every_figure(result: dict[str, Any]) -> None:
    sys_ = result["syscalls"]
    assert sys_["seccomp_filter_instructions"] > 0
    assert set(sys_["workloads"]) == {"getppid", "open", "socket"}
    wall, cpu = "wall_ns_per_iteration", "cpu_ns_per_iteration"
    for load in sys_["workloads"].values():
        assert load["iterations"] >= 1000
        modes = ("bare", "confined", "confined_without_seccomp", "bwrap_without_restrict")
        for mode in modes:
            assert load[mode][wall] > 0 and load[mode][cpu] > 0
        for key, figure in ((wall, "wall"), (cpu, "cpu")):
            assert load["ratio_confined_over_bare"][figure] == pytest.approx(
                load["confined"][key] / load["bare"][key], abs=2e-3)
            assert load["ratio_without_seccomp_over_bare"][figure] == pytest.approx(
                load["confined_without_seccomp"][key] / load["bare"][key], abs=2e-3)
        added = load["added_cpu_ns_per_iteration"]
        assert added["seccomp_filter"] == pytest.approx(
            load["confined"][cpu] - load["confined_without_seccomp"][cpu], abs=0.2)
        assert sum(added.values()) == pytest.approx(
            load["confined"][cpu] - load["bare"][cpu], abs=0.5)


def test_the_audit_overhead_on_other_processes_has_every_figure(result: dict[str, Any]
                                                                ) -> None:
    loops = result["audit_overhead_on_other_processes"]["loops"]
    assert set(loops) == {"getppid", "open"}
    for row in loops.values():
        for setup in ("no_rules", "deny_rules_only", "as_the_agent_loads_them"):
            assert row[setup] > 0
        assert row["ratio_agent_over_no_rules"] == pytest.approx(
            row["as_the_agent_loads_them"] / row["no_rules"], abs=2e-3)
