"""The monitoring benchmarks keep working (tiny runs; no figure is asserted beyond being
there and positive)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REQUIRE_REAL, require_root, require_tool

BENCH = Path(__file__).resolve().parents[2] / "bench"
LATENCY = {"p50", "p90", "p99", "max"}


def run_bench(name: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(BENCH / name), *args],
                         check=True, capture_output=True, text=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_ingest_bench_runs_small_on_both_databases() -> None:
    require_tool("mksquashfs")
    result = run_bench("ingest.py", "--gateways", "4", "--concurrency", "2", "--workers", "1",
                       "--seconds", "0.5", "--warmup", "0.2", "--prime", "2")
    assert result["load"]["telemetry_batch_bytes"] > 0
    assert result["load"]["telemetry_example"]["reports"][0]["metrics"]["cpu_percent"] >= 0
    databases = result["databases"]
    if databases["postgresql"]["status"] == "skipped" and not REQUIRE_REAL:
        del databases["postgresql"]
    assert set(result["summary"]) == set(databases)
    for name, db in databases.items():
        assert db["status"] == "ok", (name, db)
        assert db["enrolment"]["ok"] == 4 and db["prime"]["ok"] == 4
        assert db["tenant"]["rules"] == 2
        for phase in ("healthz", "heartbeat", "telemetry"):
            figures = db[phase]
            assert figures["requests"] > 0 and figures["per_s"] > 0, (name, phase)
            assert figures["errors"] == 0, (name, phase, figures["error_kinds"])
            assert set(figures["latency_ms"]) == LATENCY
            assert figures["latency_ms"]["p99"] > 0
        assert db["telemetry"]["reports_stored"] == db["telemetry"]["requests"]
        for base in ("healthz", "heartbeat"):
            assert db["ratios"][f"telemetry_over_{base}"]["cost_per_request"] > 0
        assert result["summary"][name]["reports_per_s"] > 0


def test_agent_footprint_bench_runs_quick() -> None:
    require_root("the gateway's data area and the stand-in apps' cgroups")
    for tool in ("mksquashfs", "zstd"):
        require_tool(tool)
    result = run_bench("agent_footprint.py", "--quick")
    for group, steps in (("costs", {"sample", "deliver", "scan", "idle_deliver"}),
                         ("baselines", {"psutil_sample_calls", "psutil_net_connections",
                                        "proc_files_raw"})):
        assert set(result[group]) == steps
        for figures in result[group].values():
            assert figures["cpu_ms"] >= 0 and figures["wall_ms"] > 0
    assert result["costs"]["sample"]["cpu_ms"] > 0
    assert result["per_interval"]["cpu_ms"] > 0
    rss = result["rss_kib"]
    assert rss["at_end"] > rss["bare_python_with_psutil"] > 0 and rss["peak_vmhwm"] > 0
    assert result["report_bytes"]["batch_of_one"] > 0
    report = result["report_example"]
    assert report["metrics"]["cpu_percent"] >= 0 and set(report["apps"]) == set(
        result["app_names"])
    assert result["loop"]["counts"]["sample"] >= 1 and result["loop"]["cpu_s"] > 0
    assert result["server_stored_reports"] >= 5  # every timed sample reached the server
