"""Benchmark boot verification of a sealed rootfs against ``sha384sum`` on the same bytes.

Usage: ``.venv/bin/python bench/boot_verify.py [--size-mb 256] [--repeat 3] [--no-boot]``

Prints one JSON object. Every timed run is preceded by one untimed run of the
same measurement, so all of them read from a warm page cache. Peak memory of
``verify_all`` is measured in a child process per image size (VmHWM) and with
tracemalloc, to show it does not grow with the image.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeward.release.rootfs import SealedRootfs, seal
from edgeward.trust.hashtree import TreeParams, verify_all

MIB = 1 << 20


def make_data(path: Path, size_mb: int) -> None:
    with path.open("wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(MIB))


def verify_image(image: Path, params: TreeParams) -> None:
    """What the kernel stage does: pread the partition, verify_all with a progress hook."""
    fd = os.open(image, os.O_RDONLY)
    try:
        def report(done: int) -> None:
            pass

        verify_all(lambda offset, size: os.pread(fd, size, offset), params, report)
    finally:
        os.close(fd)


def one_pass_sha384(path: Path) -> None:
    with path.open("rb") as f:
        hashlib.file_digest(f, "sha384")


def timed(fn: Callable[[], object], repeat: int) -> dict[str, Any]:
    fn()  # warm the page cache (and anything else) before timing
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return {"best_s": round(min(runs), 4), "median_s": round(statistics.median(runs), 4),
            "runs_s": [round(r, 4) for r in runs]}


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def child(argv: list[str]) -> None:
    """Hidden mode: verify one image, report peak RSS and the tracemalloc peak as JSON."""
    image, data_size, hash_offset, block_size, salt, root = argv
    params = TreeParams(int(data_size), int(hash_offset), int(block_size), bytes.fromhex(salt),
                        bytes.fromhex(root))
    before = vm_hwm_kib()
    verify_image(Path(image), params)
    after = vm_hwm_kib()
    tracemalloc.start()
    verify_image(Path(image), params)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"vmhwm_before_verify_kib": before, "vmhwm_after_verify_kib": after,
                      "tracemalloc_peak_bytes": traced_peak}))


def child_memory(sealed: SealedRootfs) -> dict[str, Any]:
    p = sealed.params
    args = [str(sealed.path), str(p.data_size), str(p.hash_offset), str(p.block_size),
            p.salt.hex(), p.root_hash.hex()]
    out = subprocess.run([sys.executable, __file__, "--child", *args],
                         check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def boot_chain(tmp: Path, sealed: SealedRootfs, repeat: int) -> dict[str, Any]:
    """Time a whole boot of a provisioned virtual gateway whose rootfs_a is ``sealed``."""
    from edgeward.board.virtual import VirtualBoard
    from edgeward.device.boot.chain import boot
    from edgeward.factory import provision, station
    from edgeward.release.osimage import make_kernel_bundle

    now = dt.datetime.now(dt.UTC)
    factory = station.init(tmp / "factory", "ew-bench", "Bench Gateways", "1.0.0", 1, None, now)
    provision.provision(factory, tmp / "device", "ew-bench-0001", None, now)
    board = VirtualBoard.open(tmp / "device")
    bundle = make_kernel_bundle("1.0.0", 1, factory.model, sealed, factory.key("kernel", None))
    board.write("kernel_a", bundle)
    board.write("rootfs_a", sealed.path)

    def one() -> None:
        report = boot(board)
        if report.verdict != "booted":
            raise RuntimeError(f"boot refused at {report.refused_stage}: {report.reason}")

    try:
        return timed(one, repeat)
    finally:
        board.power_off()  # its data area is mounted: unmounted before the temp dir goes


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mib_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / MIB / seconds, 1)


def run(size_mb: int, repeat: int, with_boot: bool) -> dict[str, Any]:
    sha384sum = shutil.which("sha384sum")
    if sha384sum is None:
        raise SystemExit("sha384sum (coreutils) is not installed")
    small_mb = min(64, max(1, size_mb // 4))
    with tempfile.TemporaryDirectory(prefix="edgeward-bench-") as name:
        tmp = Path(name)
        make_data(tmp / "data.raw", size_mb)
        sealed = seal(tmp / "data.raw", tmp / "rootfs.img")
        make_data(tmp / "small.raw", small_mb)
        small = seal(tmp / "small.raw", tmp / "small.img")
        data_bytes = sealed.params.data_size
        assert (tmp / "data.raw").stat().st_size == data_bytes

        a = timed(lambda: subprocess.run([sha384sum, str(tmp / "data.raw")], check=True,
                                         capture_output=True), repeat)
        b = timed(lambda: verify_image(sealed.path, sealed.params), repeat)
        h = timed(lambda: one_pass_sha384(tmp / "data.raw"), repeat)
        mem_small, mem_full = child_memory(small), child_memory(sealed)
        c = boot_chain(tmp, sealed, repeat) if with_boot else None

    def growth(key: str) -> int:
        return int(mem_full[key]) - int(mem_small[key])

    result: dict[str, Any] = {
        "cache": "warm",
        "warmup_runs": 1,
        "repeat": repeat,
        "data_bytes": data_bytes,
        "image_bytes": sealed.size,
        "tree_bytes": sealed.size - data_bytes,
        "sha384sum": {**a, "bytes": data_bytes, "best_MiB_per_s": mib_s(data_bytes, a["best_s"]),
                      "median_MiB_per_s": mib_s(data_bytes, a["median_s"])},
        "verify_all": {**b, "bytes": sealed.size,
                       "best_MiB_per_s": mib_s(data_bytes, b["best_s"]),
                       "median_MiB_per_s": mib_s(data_bytes, b["median_s"])},
        "ratio_verify_over_sha384sum": {"best": round(b["best_s"] / a["best_s"], 3),
                                        "median": round(b["median_s"] / a["median_s"], 3)},
        # A second baseline: one plain SHA-384 pass through OpenSSL (what hashlib uses),
        # since coreutils' sha384sum may use slower portable code than OpenSSL does.
        "hashlib_one_pass": {**h, "best_MiB_per_s": mib_s(data_bytes, h["best_s"])},
        "ratio_verify_over_one_pass": {"best": round(b["best_s"] / h["best_s"], 3),
                                       "median": round(b["median_s"] / h["median_s"], 3)},
        "throughput_note": "MiB/s of data bytes (verify_all also hashes the tree)",
        "memory": {
            "method": "child process per size: /proc/self/status VmHWM; tracemalloc peak "
                      "during a second verify_all in the same child",
            f"{small_mb}MiB": {"data_bytes": small.params.data_size, **mem_small},
            f"{size_mb}MiB": {"data_bytes": data_bytes, **mem_full},
            "vmhwm_growth_kib": growth("vmhwm_after_verify_kib"),
            "tracemalloc_peak_growth_bytes": growth("tracemalloc_peak_bytes"),
        },
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
    }
    if c is not None:
        result["boot_chain"] = {**c, "what": "edgeward.device.boot.chain.boot on a provisioned "
                                             "VirtualBoard (rom, bl2, kernel, os stages)"}
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="image size in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--no-boot", action="store_true", help="skip the full boot chain")
    args = parser.parse_args()
    if args.size_mb < 1 or args.repeat < 1:
        parser.error("--size-mb and --repeat must be at least 1")
    start = time.perf_counter()
    result = run(args.size_mb, args.repeat, not args.no_boot)
    result["bench_wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
