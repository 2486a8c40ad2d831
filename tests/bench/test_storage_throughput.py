"""The storage benchmark keeps working (a ``--quick`` run; no figure is asserted, only that
every one is there, for both directories, and consistent with the others it prints)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root, require_tool

BENCH = Path(__file__).resolve().parents[2] / "bench" / "storage_throughput.py"
PHASES = ("seq_write", "seq_read", "rand_write", "rand_read")


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    require_tool("mkfs.ext4")
    require_tool("mount")
    require_root("the benchmark loop-mounts an ext4 image and adds fscrypt keys, which")
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--json-only"], check=True,
                         capture_output=True, text=True, timeout=600)
    assert out.stderr == ""  # --json-only: no progress lines
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def test_both_directories_are_measured(result: dict[str, Any]) -> None:
    settings = result["settings"]
    assert (settings["size_mib"], settings["rand_ops"], settings["repeat"]) == (8, 256, 1)
    figures = result["results"]
    assert set(figures) == {*PHASES, "first_write_allocating"}
    for phase, row in figures.items():
        unit = "MiB/s" if phase.startswith(("seq", "first")) else "IOPS"
        assert row["unit"] == unit
        assert row["plain"] > 0 and row["encrypted"] > 0, (phase, row)
        assert row["ratio_encrypted_over_plain"] == pytest.approx(  # printed to 3 places
            row["encrypted"] / row["plain"], rel=0.01, abs=0.0006)
        expected_runs = 1 if phase == "first_write_allocating" else settings["repeat"]
        assert {k: len(v) for k, v in row["runs"].items()} == {
            "plain": expected_runs, "encrypted": expected_runs}
        if unit == "IOPS":
            assert row["plain_MiB_per_s"] > 0 and row["encrypted_MiB_per_s"] > 0


def test_one_directory_is_encrypted_and_the_other_not(result: dict[str, Any]) -> None:
    vol = result["volume"]
    assert vol["dirs"] == {"plain": "plain-bench", "encrypted": "system/storage-bench"}
    policies = vol["policies"]
    assert policies["plain"] is None and policies["volume_root"] is None
    enc = policies["encrypted"]
    assert enc["standard"] is True and enc["version"] == 2
    assert (enc["contents"], enc["filenames"]) == ("AES-256-XTS", "AES-256-CTS")
    assert vol["on_disk"]["plain"]["plaintext_on_disk"] is True
    assert vol["on_disk"]["encrypted"]["plaintext_on_disk"] is False


def test_reads_come_from_storage(result: dict[str, Any]) -> None:
    cache = result["cache"]
    assert cache["drops"] == 2 * len(PHASES) * result["settings"]["repeat"]
    assert cache["file_pages_resident_after_drop_max"] == 0
    assert cache["image_pages_resident_after_drop_max"] == 0
    assert set(cache["check_warm_seq_read_MiB_per_s"]) == {"plain", "encrypted"}
    assert result["io"]["o_direct"] is False


def test_environment_is_described(result: dict[str, Any]) -> None:
    env = result["environment"]
    assert env["kernel"] and env["cpus"] >= 1 and isinstance(env["cpu_aes_ni"], bool)
    assert env["kernel_xts_aes"] and env["kernel_xts_aes"][0]["driver"]
    assert env["userspace_openssl_aes_256_xts_MiB_per_s"] > 0
    assert result["bench_wall_s"] >= 0


def test_it_leaves_nothing_behind(result: dict[str, Any]) -> None:
    assert result["volume"]["mount_namespace"].startswith("private")
    backing = [p.read_text() for p in Path("/sys/block").glob("loop*/loop/backing_file")]
    assert not [b for b in backing if "edgeward-storage-bench-" in b]
    assert not list(Path("/var/tmp").glob("edgeward-storage-bench-*"))
