"""The benchmark keeps working (a small run; no figure is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool

BENCH = Path(__file__).resolve().parents[2] / "bench" / "boot_verify.py"


def test_bench_runs_and_prints_both_timings() -> None:
    require_tool("sha384sum")
    require_tool("mksquashfs")
    out = subprocess.run([sys.executable, str(BENCH), "--size-mb", "4", "--repeat", "1"],
                         check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout)
    assert result["data_bytes"] == 4 << 20
    for key in ("sha384sum", "verify_all", "hashlib_one_pass", "boot_chain"):
        assert result[key]["best_s"] > 0
    assert set(result["memory"]) >= {"1MiB", "4MiB", "vmhwm_growth_kib"}


def test_fleet_checkin_bench_runs_small() -> None:
    require_tool("mksquashfs")
    bench = BENCH.parent / "fleet_checkin.py"
    out = subprocess.run([sys.executable, str(bench), "--gateways", "12", "--seconds", "1",
                          "--warmup", "0.5", "--backends", "sqlite"],
                         check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout)["backends"]["sqlite"]
    assert result["status"] == "ok" and result["gateways"] == 12
    assert result["checkins"] > 0 and result["errors"] == 0
