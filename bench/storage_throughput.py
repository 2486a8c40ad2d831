"""Benchmark fscrypt on the data area: read/write throughput, encrypted against plain.

Usage: ``.venv/bin/python bench/storage_throughput.py [--size-mib 256] [--block-kib 1024]
[--rand-ops 16384] [--repeat 3] [--quick] [--json-only]`` (as root: it formats and
loop-mounts an ext4 image and adds fscrypt keys; anything else exits 2).

Prints one JSON object. The volume is the project's own: a ``VirtualBoard`` in a
temporary directory under /var/tmp, ``volume.format_volume`` (ext4 ``-O encrypt``,
loop-mounted at the board's data mount, ``system/`` encrypted under its fscrypt v2 key).
The baseline lives on the SAME image in the same run: ``system/storage-bench/`` inherits
the system folder's policy, ``plain-bench/`` at the volume's root has none, and
``fscrypt.get_policy`` must say so before anything is timed. A marker file written in
each is then looked up in the image through FIEMAP: plaintext on disk in the plain one,
not in the encrypted one.

Per directory, one file of ``--size-mib``, written once untimed (its first, allocating
write is reported apart), then timed runs that overwrite it in place, so no run pays for
block allocation (in ext4, or in the sparse image on the host):

* ``seq_write``: ``--block-kib`` writes from offset 0 to the end, one fsync at the end
  (inside the timing);
* ``seq_read``: the whole file in ``--block-kib`` reads (kernel readahead as is);
* ``rand_write``: ``--rand-ops`` 4 KiB writes at distinct random page-aligned offsets,
  one fsync at the end (inside the timing). Buffered I/O: O_DIRECT on fscrypt files needs
  Linux 5.18+ with inline encryption (``-o inlinecrypt``), else ext4 quietly falls back
  to buffered I/O for them (the kernel's config is in the JSON), so no run uses it.
  With one fsync at the end the kernel writes the pages back in its own order, so this
  measures encrypting and writing back scattered pages, not a device's random IOPS;
* ``rand_read``: ``--rand-ops`` 4 KiB preads at distinct random offsets, with
  ``POSIX_FADV_RANDOM`` (no readahead: one 4 KiB read from storage each).

Reads come from storage, not the page cache. Before every timed run (reads and writes
alike) the file is fsynced and dropped with ``posix_fadvise(POSIX_FADV_DONTNEED)``, and so
is the image file underneath: the loop device reads and writes its backing file through
the host's page cache (direct I/O off), a second cache that unmounting the volume would
not empty. Each drop is checked with ``mincore``: no page of the file, nor of the image
under the file's extents, may stay resident (the counts are in the JSON). Plain and
encrypted runs alternate (the order flips every repeat) and share their random offsets;
each figure is the median of ``--repeat`` runs. The volume is mounted in a mount namespace of the
bench's own (no other process sees it, nor can unmount it), and everything (mount, loop
device, temporary directory) is removed at the end, on failure too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import gzip
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeward.board.virtual import VirtualBoard
from edgeward.device.storage import fscrypt, volume

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
RAND_IO = 4096
PHASES = ("seq_write", "seq_read", "rand_write", "rand_read")
DIRS = ("plain", "encrypted")
MODES = {fscrypt.MODE_AES_256_XTS: "AES-256-XTS", 2: "AES-256-GCM", 3: "AES-256-CBC",
         fscrypt.MODE_AES_256_CTS: "AES-256-CTS", 5: "AES-128-CBC", 6: "AES-128-CTS",
         9: "Adiantum", 10: "AES-256-HCTR2"}
PAD_FLAGS = {0: "PAD_4", 1: "PAD_8", 2: "PAD_16", 3: "PAD_32"}
MARKER = b"edgeward storage bench: plaintext"  # 33 bytes, never a ciphertext by chance

QUIET = False


def say(message: str) -> None:
    if not QUIET:
        print(f"storage bench: {message}", file=sys.stderr, flush=True)


# --- page cache: drop and check ------------------------------------------------------------
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


def resident_pages(path: Path, ranges: list[tuple[int, int]] | None = None) -> int:
    """Pages of ``path`` in the page cache (mincore on a mapping that is never touched),
    over ``ranges`` (offset, length) or the whole file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        total = 0
        for offset, length in ranges if ranges is not None else [(0, size)]:
            start = offset - offset % PAGE
            length = min(offset + length, size) - start
            if length <= 0:
                continue
            addr = _libc.mmap(None, length, 1, 1, fd, start)  # PROT_READ, MAP_SHARED
            if addr in (None, _MAP_FAILED):
                raise OSError(ctypes.get_errno(), f"mmap of {path}")
            try:
                vec = (ctypes.c_ubyte * ((length + PAGE - 1) // PAGE))()
                if _libc.mincore(addr, length, vec) != 0:
                    raise OSError(ctypes.get_errno(), f"mincore of {path}")
                total += sum(b & 1 for b in vec)
            finally:
                _libc.munmap(addr, length)
        return total
    finally:
        os.close(fd)


def drop_cached(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# --- a mount namespace of our own ----------------------------------------------------------
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]


def private_mount_namespace() -> None:
    """Mount the volume where no other process sees it: a session of the test suite that
    ends meanwhile unmounts every gateway data area it finds under /var/tmp
    (tests/conftest.py), and a mount that only this process has goes with it, whatever
    the way it ends."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "making / private in the new mount namespace")


# --- FIEMAP: where a file's blocks are in the image ----------------------------------------
class _Fiemap(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("length", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("mapped_extents", ctypes.c_uint32),
                ("extent_count", ctypes.c_uint32), ("reserved", ctypes.c_uint32)]


class _Extent(ctypes.Structure):
    _fields_ = [("logical", ctypes.c_uint64), ("physical", ctypes.c_uint64),
                ("length", ctypes.c_uint64), ("reserved64", ctypes.c_uint64 * 2),
                ("flags", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 3)]


FS_IOC_FIEMAP = 3 << 30 | ctypes.sizeof(_Fiemap) << 16 | ord("f") << 8 | 11
FIEMAP_FLAG_SYNC = 0x1
EXTENT_LAST, EXTENT_ENCRYPTED = 0x1, 0x80
FIEMAP_BATCH = 256


@dataclass(frozen=True)
class Extent:
    logical: int
    physical: int
    length: int
    flags: int


def extents(path: Path) -> list[Extent]:
    found: list[Extent] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 0
        while True:
            buf = ctypes.create_string_buffer(ctypes.sizeof(_Fiemap)
                                              + FIEMAP_BATCH * ctypes.sizeof(_Extent))
            head = _Fiemap.from_buffer(buf)
            head.start, head.length = start, (1 << 64) - 1 - start
            head.flags, head.extent_count = FIEMAP_FLAG_SYNC, FIEMAP_BATCH
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf, True)
            batch = (_Extent * FIEMAP_BATCH).from_buffer(buf, ctypes.sizeof(_Fiemap))
            got = [Extent(e.logical, e.physical, e.length, e.flags)
                   for e in batch[:head.mapped_extents]]
            del head, batch
            found.extend(got)
            if not got or got[-1].flags & EXTENT_LAST:
                return found
            start = got[-1].logical + got[-1].length
    finally:
        os.close(fd)


# --- the volume ----------------------------------------------------------------------------
@dataclass
class Volume:
    board: VirtualBoard
    image: Path
    dirs: dict[str, Path]


@contextlib.contextmanager
def bench_volume(image_bytes: int) -> Iterator[Volume]:
    tmp = Path(tempfile.mkdtemp(prefix="edgeward-storage-bench-", dir="/var/tmp"))
    board = VirtualBoard.create(tmp / "gateway")
    try:
        volume.format_volume(board, os.urandom(32), image_bytes)
        encrypted = board.data_mount / volume.SYSTEM / "storage-bench"
        plain = board.data_mount / "plain-bench"
        encrypted.mkdir(mode=0o700)
        plain.mkdir(mode=0o700)
        yield Volume(board, board.data_partition, {"plain": plain, "encrypted": encrypted})
    finally:
        board.power_off()  # unmounts the volume (its keys leave the kernel, the loop goes)
        if os.path.ismount(board.data_mount):
            print(f"storage bench: {board.data_mount} is still mounted; left {tmp} in place",
                  file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def describe_policy(policy: fscrypt.Policy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {"version": fscrypt.POLICY_V2,
            "contents": MODES.get(policy.contents_mode, str(policy.contents_mode)),
            "filenames": MODES.get(policy.filenames_mode, str(policy.filenames_mode)),
            "filenames_padding": PAD_FLAGS.get(policy.flags & 0x3, "?"),
            "flags": policy.flags, "standard": policy.standard,
            "key_identifier": policy.identifier.hex()}


def check_policies(vol: Volume) -> dict[str, Any]:
    """One directory encrypted with the project's policy, the other not: or no figure."""
    enc = fscrypt.get_policy(vol.dirs["encrypted"])
    plain = fscrypt.get_policy(vol.dirs["plain"])
    root = fscrypt.get_policy(vol.board.data_mount)
    if enc is None or not enc.standard:
        raise SystemExit(f"{vol.dirs['encrypted']} is not encrypted with the standard policy")
    if plain is not None:
        raise SystemExit(f"{vol.dirs['plain']} is encrypted: no plain baseline")
    return {"encrypted": describe_policy(enc), "plain": describe_policy(plain),
            "volume_root": describe_policy(root)}


def check_on_disk(vol: Volume) -> dict[str, Any]:
    """A marker written in each directory, read back from the image where FIEMAP puts it."""
    data = MARKER * (65536 // len(MARKER))
    out: dict[str, Any] = {}
    for name, folder in vol.dirs.items():
        path = folder / "marker"
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        found = extents(path)
        if not found:
            raise SystemExit(f"FIEMAP maps no block of {path}")
        fd = os.open(vol.image, os.O_RDONLY)
        try:
            on_disk = b"".join(os.pread(fd, e.length, e.physical) for e in found)[:len(data)]
        finally:
            os.close(fd)
        path.unlink()
        out[name] = {"plaintext_on_disk": MARKER in on_disk,
                     "fiemap_encrypted_flag": all(e.flags & EXTENT_ENCRYPTED for e in found)}
    if not out["plain"]["plaintext_on_disk"] or out["encrypted"]["plaintext_on_disk"]:
        raise SystemExit(f"on-disk check failed: {out}")
    return out


def loop_direct_io(image: Path) -> bool | None:
    tool = shutil.which("losetup")
    if tool is None:
        return None
    done = subprocess.run([tool, "-J", "-l", "-O", "back-file,dio", "-j", str(image)],
                          capture_output=True, text=True, check=False)
    try:
        rows = json.loads(done.stdout)["loopdevices"]
    except (ValueError, KeyError):
        return None
    return bool(rows and str(rows[0]["dio"]).lower() in ("1", "true"))


# --- the measurements ----------------------------------------------------------------------
@dataclass
class Cache:
    drops: int = 0
    file_pages_left_max: int = 0
    image_pages_left_max: int = 0


class Bench:
    def __init__(self, vol: Volume, size: int, block: int, rand_ops: int) -> None:
        self.vol, self.size, self.block, self.rand_ops = vol, size, block, rand_ops
        self.cache = Cache()
        self.pattern = os.urandom(block)
        self.rand_block = os.urandom(RAND_IO)
        self.files = {name: folder / "data.bin" for name, folder in vol.dirs.items()}
        self.extents = {name: [(e.physical, e.length) for e in extents(path)]
                        for name, path in self.files.items() if path.exists()}

    def cold(self, name: str) -> None:
        """Neither the file's pages nor the image's under them stay in the page cache."""
        path = self.files[name]
        drop_cached(path)
        drop_cached(self.vol.image)
        self.cache.drops += 1
        left_file = resident_pages(path)
        left_image = resident_pages(self.vol.image, self.extents[name])
        self.cache.file_pages_left_max = max(self.cache.file_pages_left_max, left_file)
        self.cache.image_pages_left_max = max(self.cache.image_pages_left_max, left_image)

    def write_all(self, name: str, flags: int = 0) -> float:
        view = memoryview(self.pattern)
        fd = os.open(self.files[name], os.O_WRONLY | os.O_CREAT | flags, 0o600)
        try:
            start = time.perf_counter()
            left = self.size
            while left:
                chunk = view[:min(left, self.block)]
                while chunk:
                    chunk = chunk[os.write(fd, chunk):]
                left -= min(left, self.block)
            os.fsync(fd)
            return time.perf_counter() - start
        finally:
            os.close(fd)

    def first_write(self, name: str) -> float:
        seconds = self.write_all(name, os.O_TRUNC)
        self.extents[name] = [(e.physical, e.length) for e in extents(self.files[name])]
        return self.size / MIB / seconds

    def seq_write(self, name: str) -> float:
        return self.size / MIB / self.write_all(name)  # overwrite in place: no allocation

    def seq_read(self, name: str) -> float:
        buf = bytearray(self.block)
        fd = os.open(self.files[name], os.O_RDONLY)
        try:
            start = time.perf_counter()
            total = 0
            while n := os.readv(fd, [buf]):
                total += n
            seconds = time.perf_counter() - start
        finally:
            os.close(fd)
        if total != self.size:
            raise RuntimeError(f"read {total} bytes of {self.size}")
        return self.size / MIB / seconds

    def offsets(self, seed: int) -> list[int]:
        pages = self.size // RAND_IO
        return [p * RAND_IO for p in random.Random(seed).sample(range(pages), self.rand_ops)]

    def rand_write(self, name: str, seed: int) -> float:
        offsets, data = self.offsets(seed), self.rand_block
        fd = os.open(self.files[name], os.O_WRONLY)
        try:
            start = time.perf_counter()
            for offset in offsets:
                if os.pwrite(fd, data, offset) != RAND_IO:
                    raise RuntimeError("short write")
            os.fsync(fd)
            seconds = time.perf_counter() - start
        finally:
            os.close(fd)
        return len(offsets) / seconds

    def rand_read(self, name: str, seed: int) -> float:
        offsets, buf = self.offsets(seed + 7919), bytearray(RAND_IO)
        fd = os.open(self.files[name], os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            start = time.perf_counter()
            for offset in offsets:
                if os.preadv(fd, [buf], offset) != RAND_IO:
                    raise RuntimeError("short read")
            seconds = time.perf_counter() - start
        finally:
            os.close(fd)
        return len(offsets) / seconds


def summarize(runs: dict[str, list[float]], unit: str) -> dict[str, Any]:
    digits = 1 if unit == "MiB/s" else 0
    plain, enc = statistics.median(runs["plain"]), statistics.median(runs["encrypted"])
    out: dict[str, Any] = {"unit": unit, "plain": round(plain, digits),
                           "encrypted": round(enc, digits),
                           "ratio_encrypted_over_plain": round(enc / plain, 3)}
    if unit == "IOPS":
        out["plain_MiB_per_s"] = round(plain * RAND_IO / MIB, 1)
        out["encrypted_MiB_per_s"] = round(enc * RAND_IO / MIB, 1)
    out["runs"] = {k: [round(v, digits) for v in values] for k, values in runs.items()}
    return out


def measure(bench: Bench, repeat: int) -> dict[str, Any]:
    first = {}
    for name in DIRS:
        say(f"first (allocating) write of {bench.size // MIB} MiB in {name}")
        first[name] = [bench.first_write(name)]
    runs: dict[str, dict[str, list[float]]] = {p: {d: [] for d in DIRS} for p in PHASES}
    for rep in range(repeat):
        order = DIRS if rep % 2 == 0 else DIRS[::-1]
        seed = 1000 + rep
        steps: dict[str, Callable[[str], float]] = {
            "seq_write": bench.seq_write, "seq_read": bench.seq_read,
            "rand_write": functools.partial(bench.rand_write, seed=seed),
            "rand_read": functools.partial(bench.rand_read, seed=seed)}
        for phase in PHASES:
            for name in order:
                bench.cold(name)
                runs[phase][name].append(steps[phase](name))
                say(f"run {rep + 1}/{repeat} {phase} {name}: {runs[phase][name][-1]:.1f}")
    result = {p: summarize(runs[p], "MiB/s" if p.startswith("seq") else "IOPS")
              for p in PHASES}
    result["first_write_allocating"] = summarize(first, "MiB/s")
    return result


def warm_seq_read(bench: Bench) -> dict[str, float]:
    """The same read from a warm page cache: what the cold figures would be without the
    drop (a check that the drop works, not a figure of the storage)."""
    out = {}
    for name in DIRS:
        bench.seq_read(name)
        out[name] = round(bench.seq_read(name), 1)
    return out


# --- the environment -----------------------------------------------------------------------
def cpu_info() -> tuple[str, bool]:
    model, flags = platform.processor() or "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return model, "aes" in flags


def kernel_crypto(name: str) -> list[dict[str, Any]]:
    """The kernel's implementations of ``name`` (from /proc/crypto), the chosen one first."""
    found: list[dict[str, Any]] = []
    entry: dict[str, str] = {}
    for line in (Path("/proc/crypto").read_text() + "\n").splitlines():
        key, _, value = line.partition(":")
        if not key.strip():
            if entry.get("name") == name:
                found.append({"driver": entry.get("driver"),
                              "priority": int(entry.get("priority", "0"))})
            entry = {}
        else:
            entry[key.strip()] = value.strip()
    return sorted(found, key=lambda e: -int(e["priority"]))


def kernel_config(*options: str) -> dict[str, str] | None:
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        return None
    values = {o: "not set" for o in options}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in values:
            values[key] = value
    return values


def userspace_xts_mib_s(total: int = 256 * MIB, unit: int = MIB) -> float:
    """AES-256-XTS through OpenSSL (cryptography) in this process, ``unit`` bytes per call:
    what this CPU does with AES-NI, a reference for the kernel's implementation."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key, data = os.urandom(64), os.urandom(unit)
    start = time.perf_counter()
    for i in range(total // unit):
        encryptor = Cipher(algorithms.AES(key), modes.XTS(i.to_bytes(16, "little"))).encryptor()
        encryptor.update(data)
        encryptor.finalize()
    return round(total / MIB / (time.perf_counter() - start), 1)


def environment() -> dict[str, Any]:
    model, aes_ni = cpu_info()
    return {"kernel": platform.release(), "cpu_model": model, "cpus": os.cpu_count(),
            "cpu_aes_ni": aes_ni,
            "kernel_xts_aes": kernel_crypto("xts(aes)"),
            "kernel_cts_cbc_aes": kernel_crypto("cts(cbc(aes))"),
            "kernel_config": kernel_config("CONFIG_CRYPTO_AES_NI_INTEL", "CONFIG_FS_ENCRYPTION",
                                           "CONFIG_FS_ENCRYPTION_INLINE_CRYPT",
                                           "CONFIG_BLK_INLINE_ENCRYPTION"),
            "userspace_openssl_aes_256_xts_MiB_per_s": userspace_xts_mib_s(),
            "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
            "python": platform.python_version()}


# --- main ----------------------------------------------------------------------------------
def main() -> int:
    global QUIET
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="file size per directory")
    parser.add_argument("--block-kib", type=int, default=1024, help="sequential I/O size")
    parser.add_argument("--rand-ops", type=int, default=16384,
                        help="random 4 KiB operations per run (at most one per page)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: --size-mib 8 --rand-ops 256 --repeat 1")
    parser.add_argument("--json-only", action="store_true", help="no progress on stderr")
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.rand_ops, args.repeat = 8, 256, 1
    if min(args.size_mib, args.block_kib, args.rand_ops, args.repeat) < 1:
        parser.error("sizes and counts must be at least 1")
    size, block = args.size_mib * MIB, args.block_kib * 1024
    if size % RAND_IO or block % RAND_IO:
        parser.error("--block-kib must be a multiple of 4")
    args.rand_ops = min(args.rand_ops, size // RAND_IO)
    QUIET = args.json_only
    if os.geteuid() != 0:
        print("storage bench: needs root (it formats and loop-mounts an ext4 image and "
              "gives the kernel fscrypt keys)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on the way out
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    begin = time.perf_counter()
    image_bytes = max(volume.DEFAULT_SIZE, 2 * size + 256 * MIB)
    result: dict[str, Any] = {"settings": {**vars(args), "rand_io_bytes": RAND_IO},
                              "environment": environment()}
    private_mount_namespace()
    with bench_volume(image_bytes) as vol:
        say(f"volume of {image_bytes // MIB} MiB at {vol.board.data_mount}")
        result["volume"] = {
            "how": "edgeward volume.format_volume on a VirtualBoard: ext4 -O encrypt in a "
                   f"sparse image, mount -o {volume.MOUNT_OPTIONS}",
            "mount_namespace": "private to the bench (unshare, / made rprivate)",
            "image_bytes": image_bytes, "loop_direct_io": loop_direct_io(vol.image),
            "dirs": {k: str(v.relative_to(vol.board.data_mount)) for k, v in vol.dirs.items()},
            "policies": check_policies(vol), "on_disk": check_on_disk(vol)}
        bench = Bench(vol, size, block, args.rand_ops)
        result["results"] = measure(bench, args.repeat)
        result["cache"] = {
            "method": "before every timed run: fsync and posix_fadvise(POSIX_FADV_DONTNEED) "
                      "of the file and of the loop device's backing image; checked with "
                      "mincore (file pages, and image pages under the file's extents)",
            "drops": bench.cache.drops,
            "file_pages_resident_after_drop_max": bench.cache.file_pages_left_max,
            "image_pages_resident_after_drop_max": bench.cache.image_pages_left_max,
            "check_warm_seq_read_MiB_per_s": warm_seq_read(bench)}
    result["io"] = {
        "buffered": True, "o_direct": False,
        "why": "O_DIRECT on fscrypt files needs Linux 5.18+ and blk-crypto inline "
               "encryption (mount -o inlinecrypt); otherwise ext4 quietly falls back to "
               "buffered I/O for them, so plain O_DIRECT would not compare: all I/O is "
               "buffered",
        "seq": f"{args.block_kib} KiB blocks; writes overwrite in place, fsync inside the "
               "timing; reads with the kernel's readahead",
        "rand": "4 KiB at distinct random page-aligned offsets; writes buffered with one "
                "fsync at the end (inside the timing); reads with POSIX_FADV_RANDOM",
        "order": "plain and encrypted alternate per phase, order flipped every repeat; "
                 "median of the runs"}
    result["bench_wall_s"] = round(time.perf_counter() - begin, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
