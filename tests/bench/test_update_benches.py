"""The OS-update benchmarks keep working (``--quick`` runs; no figure is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import require_tool

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(name: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(BENCH / name), "--quick"],
                         check=True, capture_output=True, text=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_update_install_bench_runs_quick() -> None:
    for tool in ("sha384sum", "mksquashfs", "unsquashfs", "zstd"):
        require_tool(tool)
    result = run_bench("update_install.py")
    assert result["sizes_MiB"] == {"small": 2, "full": 8}
    for label in ("small", "full"):
        install = result["install"][label]
        assert install["how"] == "full image"
        assert install["total_install"]["median_s"] > 0
        assert set(install["phases_median_s"]) >= {
            "tuf_client_init", "tuf_refresh", "target_lookup", "download_kernel",
            "download_rootfs", "tuf_verify_rootfs", "write_rootfs", "verify_slot", "stage"}
        assert result["peak_rss_kib"][label] > 0
    assert result["rootfs_bytes"]["full"] > result["rootfs_bytes"]["small"] > 2 << 20
    for key in ("sha384sum", "cp_and_sync", "https_download_raw"):
        assert result["baselines"][key]["median_s"] > 0
    assert result["total_install_s"] > 0 and result["sha384sum_s"] > 0
    assert result["ratio_install_over_sha384sum"] > 0 and result["install_MiB_per_s"] > 0
    assert isinstance(result["rss_growth_kib"], int)
    assert result["after_install"]["outcome"]["action"] == "committed"


def test_delta_size_bench_runs_quick() -> None:
    for tool in ("mksquashfs", "zstd"):
        require_tool(tool)
    result = run_bench("delta_size.py")
    assert result["applied_matches_full"] is True
    assert 0 < result["delta_bytes"] < result["full_rootfs_bytes"]
    assert result["changed_bytes"] > 0 and len(result["changed_files"]) >= 2
    assert result["ratio_delta_over_full"] > 0
    assert result["delta_build_s"] > 0 and result["delta_apply"]["median_s"] > 0
    assert result["zstd19_full"]["bytes"] > 0
    assert result["uncompressed_squashfs_comparison"]["delta_bytes"] > 0
