"""Benchmark the size of an OS delta for a security patch against the full image.

Usage: ``.venv/bin/python bench/delta_size.py [--size 100] [--repeat 3] [--quick]``

Prints one JSON object. Release 1.0.0 is a rootfs of ``--size`` MiB of real files
copied from this machine (deterministically: two Python modules and a few core
shared libraries, then /usr/lib/python3.*, then /usr/lib/x86_64-linux-gnu in sorted
order; static archives, files that would overshoot the size, sockets, devices and
unreadable files skipped; symlinks kept), built with ``osbuild.build``. Release
1.0.1 is a "security patch" of it: three shared libraries rebuilt (simulated: a few
KiB changed in place, a few hundred bytes inserted, fix-ups scattered through the
file), two Python modules patched (a function inserted), one file added. It is built
with ``base=`` the 1.0.0 build, so osbuild makes the ``zstd --patch-from`` delta with
the base hash-tree salt.

Reported: full and delta sizes, their ratio, the bytes of the files that changed,
the delta build time (``osbuild.make_delta``), the apply time on the gateway
(``device.updates.delta.apply`` in a child process, with zstd's peak RSS) and that
the applied image hashes (SHA-384) to the full one; as a comparison, ``zstd -19`` of
the full image alone. Then where the delta's bytes go: the delta of the squashfs
part alone, how many 4 KiB blocks of 1.0.1 are found in 1.0.0 at all or in the
same place, and the delta the same patch would make between squashfs images with
nothing compressed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

MIB = 1 << 20
BLOCK = 4096
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
# Copied first (those present): what a security update of a gateway OS touches.
CORE = ["libc.so.6", "libssl.so.3", "libcrypto.so.3", "libz.so.1*", "libexpat.so.1*",
        "libsqlite3.so.0*", "libzstd.so.1*"]
CORE_PY = ["ssl.py", "http/client.py"]
PATCH_LIBS = ["libssl.so.3", "libcrypto.so.3", "libexpat.so.1.*"]
PATCH_PY = ["ssl.py", "http/client.py"]
ADDED = "usr/lib/x86_64-linux-gnu/libedgeward-hardening.so.1"
ADDED_BYTES = 48 * 1024


# --- the tree ----------------------------------------------------------------------------
def python_dir() -> Path | None:
    found = sorted(p for p in Path("/usr/lib").glob("python3.*") if p.is_dir())
    return found[-1] if found else None


def walk_sorted(top: Path) -> list[Path]:
    out: list[Path] = []
    for here, dirs, files in os.walk(top):
        dirs.sort()
        out.extend(Path(here) / f for f in sorted(files))
        # symlinked directories are listed in dirs but not entered: keep them as links
        out.extend(Path(here) / d for d in dirs if (Path(here) / d).is_symlink())
    return out


def candidates() -> list[Path]:
    pydir = python_dir()
    first = [pydir / name for name in CORE_PY] if pydir is not None else []
    first += [p for pattern in CORE for p in sorted(LIBDIR.glob(pattern))]
    rest = walk_sorted(pydir) if pydir is not None else []
    rest += [p for p in walk_sorted(LIBDIR) if not p.name.endswith(".a")]
    return first + rest


def copy_tree(dest: Path, size_mb: int) -> dict[str, Any]:
    """Copy real files into ``dest`` (paths kept): up to ``size_mb`` MiB of file data."""
    budget, total, files, links = size_mb * MIB, 0, 0, 0
    seen: set[Path] = set()
    for src in candidates():
        if total >= budget:
            break
        if src in seen:
            continue
        seen.add(src)
        target = dest / src.relative_to("/")
        try:
            st = src.lstat()
            if stat.S_ISLNK(st.st_mode):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(os.readlink(src))
                links += 1
            elif stat.S_ISREG(st.st_mode):
                if total + st.st_size > budget:
                    continue  # would overshoot (libLLVM alone is >100 MiB): a smaller one
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
                total, files = total + st.st_size, files + 1
        except (OSError, ValueError):
            continue  # unreadable, vanished, or a duplicate path: skip
    return {"file_bytes": total, "files": files, "symlinks": links}


def patch_binary(path: Path, rng: random.Random) -> None:
    """A rebuilt library: a changed function (4 KiB), code inserted (shifting what
    follows), relocations and offsets fixed up through the file."""
    data = bytearray(path.read_bytes())
    n = len(data)
    at = int(n * 0.6)
    data[at:at + 4096] = rng.randbytes(min(4096, n - at))
    for _ in range(64):
        p = rng.randrange(0, max(1, len(data) - 8))
        data[p:p + 8] = rng.randbytes(8)
    cut = int(n * 0.4)
    data[cut:cut] = rng.randbytes(512)
    path.write_bytes(bytes(data))


def patch_python(path: Path, rng: random.Random) -> None:
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(True)
    at = len(lines) // 2
    tag = rng.randrange(1 << 32)
    fix = [f"\n\ndef _edgeward_cve_check_{tag:08x}(value, limit=65536):\n",
           '    """Security fix: refuse oversized input before parsing it."""\n',
           "    if value is None:\n", "        return value\n",
           "    if len(value) > limit:\n",
           "        raise ValueError(f'input of {len(value)} bytes over {limit}')\n",
           "    return value\n\n"]
    path.write_text("".join(lines[:at] + fix + lines[at:]), encoding="utf-8",
                    errors="surrogateescape")


def pick(tree: Path, patterns: list[str], base: Path, fallback_suffix: str, k: int
         ) -> list[Path]:
    """The patch targets present in the tree; deterministic fallbacks if some are not."""
    chosen = [p for pattern in patterns for p in sorted((tree / base).glob(pattern))
              if p.is_file() and not p.is_symlink()]
    if len(chosen) < k:
        more = [p for p in sorted(tree.rglob(f"*{fallback_suffix}"))
                if p.is_file() and not p.is_symlink() and p not in chosen]
        chosen += more[:k - len(chosen)]
    return chosen[:k]


def security_patch(tree: Path) -> dict[str, Any]:
    rng = random.Random(20240501)
    pydir = python_dir()
    libs = pick(tree, PATCH_LIBS, LIBDIR.relative_to("/"), ".so", 3)
    pys = pick(tree, PATCH_PY, pydir.relative_to("/") if pydir else Path("usr/lib"), ".py", 2)
    changed: dict[str, dict[str, int]] = {}
    for path, fn in [*((p, patch_binary) for p in libs), *((p, patch_python) for p in pys)]:
        before = path.stat().st_size
        fn(path, rng)
        changed["/" + str(path.relative_to(tree))] = {"before": before,
                                                      "after": path.stat().st_size}
    added = tree / ADDED
    added.parent.mkdir(parents=True, exist_ok=True)
    added.write_bytes(rng.randbytes(ADDED_BYTES))
    changed["/" + ADDED] = {"before": 0, "after": ADDED_BYTES}
    return changed


# --- measurements ------------------------------------------------------------------------
def plain_squashfs(tree: Path, out: Path) -> Path:
    """The tree as rootfs.mksquashfs makes it, but nothing compressed (for comparison)."""
    subprocess.run(["mksquashfs", str(tree), str(out), "-noappend", "-all-root", "-no-xattrs",
                    "-quiet", "-no-progress", "-mkfs-time", "0", "-all-time", "0",
                    "-processors", "1", "-noI", "-noD", "-noF", "-noX"],
                   check=True, capture_output=True)
    return out


def child_apply(base: str, delta: str, out: str, base_kernel: str, new_kernel: str) -> None:
    """Hidden mode: the gateway's delta.rebuild (zstd, then the hash tree rebuilt from
    the new kernel bundle's salt); its time and zstd's peak RSS."""
    from edgeward.device.updates import delta as deltas
    from edgeward.trust.manifest import peek_kernel_bundle

    old = peek_kernel_bundle(Path(base_kernel).read_bytes()).rootfs
    new = peek_kernel_bundle(Path(new_kernel).read_bytes()).rootfs
    t0 = time.perf_counter()
    deltas.rebuild(Path(base), old.data_size, Path(delta), new, Path(out))
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds,
                      "zstd_peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


def apply_in_child(base: Path, delta: Path, out: Path, base_kernel: Path, new_kernel: Path
                   ) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", str(base), str(delta), str(out),
                           str(base_kernel), str(new_kernel)],
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"delta apply failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def median_of(runs: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(runs), 3), "best_s": round(min(runs), 3),
            "runs_s": [round(r, 3) for r in runs]}


def sha384(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha384").hexdigest()


def head(image: Path, nbytes: int, out: Path) -> Path:
    with image.open("rb") as src, out.open("wb") as dst:
        left = nbytes
        while left:
            block = src.read(min(MIB, left))
            if not block:
                break
            dst.write(block)
            left -= len(block)
    return out


def blocks(path: Path, data_size: int) -> list[bytes]:
    with path.open("rb") as f:
        return [hashlib.sha256(f.read(BLOCK)).digest() for _ in range(data_size // BLOCK)]


def block_reuse(base: Path, base_size: int, new: Path, new_size: int) -> dict[str, Any]:
    """4 KiB data blocks of ``new``: the same as ``base`` at that offset, or anywhere."""
    old, fresh = blocks(base, base_size), blocks(new, new_size)
    known = set(old)
    same_place = sum(1 for i, b in enumerate(fresh) if i < len(old) and old[i] == b)
    anywhere = sum(1 for b in fresh if b in known)
    return {"data_blocks": len(fresh), "same_offset_as_base": same_place,
            "same_block_anywhere_in_base": anywhere,
            "blocks_not_in_base": len(fresh) - anywhere,
            "note": "4 KiB-aligned blocks, as the hash tree sees them: content that moved by "
                    "other than a multiple of 4 KiB counts as not in base"}


def run(size_mb: int, repeat: int) -> dict[str, Any]:
    zstd = shutil.which("zstd")
    if zstd is None or shutil.which("mksquashfs") is None:
        raise SystemExit("zstd and mksquashfs are needed (scripts/bootstrap)")
    from edgeward.release import osbuild
    from edgeward.trust import keys
    from edgeward.trust.manifest import peek_kernel_bundle

    key = keys.generate(keys.Algorithm.ECDSA_P384)
    # The rootfs ships the TUF root; its content does not matter to the sizes here.
    tuf_root = json.dumps({"signed": {"_type": "root", "version": 1}, "signatures": []},
                          indent=1).encode()
    out: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0],
                           "repeat": repeat}
    with tempfile.TemporaryDirectory(prefix="edgeward-delta-bench-") as name:
        tmp = Path(name)
        tree = tmp / "tree"
        out["tree"] = {"requested_MiB": size_mb, **copy_tree(tree, size_mb)}
        t0 = time.perf_counter()
        old = osbuild.build(tmp / "build-1.0.0", "1.0.0", 1, "ew-gw1", key, tuf_root,
                            tree=tree)
        out["full_build_s"] = round(time.perf_counter() - t0, 2)

        plain_old = plain_squashfs(tree, tmp / "plain-1.0.0.squashfs")
        changed = security_patch(tree)
        plain_new = plain_squashfs(tree, tmp / "plain-1.0.1.squashfs")
        delta_s: list[float] = []
        make_delta = osbuild.make_delta

        def timed_delta(base: Path, new: Path, dest: Path) -> None:
            t = time.perf_counter()
            make_delta(base, new, dest)
            delta_s.append(time.perf_counter() - t)

        with mock.patch.object(osbuild, "make_delta", timed_delta):
            t0 = time.perf_counter()
            new = osbuild.build(tmp / "build-1.0.1", "1.0.1", 2, "ew-gw1", key, tuf_root,
                                base=old.directory, tree=tree)
            patch_build_s = time.perf_counter() - t0
        shutil.rmtree(tree)
        delta = new.delta()
        assert delta is not None
        full_bytes, delta_bytes = new.rootfs.stat().st_size, delta.stat().st_size
        info = new.info()

        applied = tmp / "applied.img"
        kernels = (old.kernel, new.kernel)
        apply_in_child(old.rootfs, delta, applied, *kernels)  # warm-up, untimed
        applies = [apply_in_child(old.rootfs, delta, applied, *kernels) for _ in range(repeat)]
        t0 = time.perf_counter()
        applied_sha = sha384(applied)
        verify_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        subprocess.run([zstd, "-q", "-f", "-19", str(new.rootfs), "-o", str(tmp / "full.zst")],
                       check=True, capture_output=True)
        zstd_s = time.perf_counter() - t0
        zstd_bytes = (tmp / "full.zst").stat().st_size

        data_size = peek_kernel_bundle(new.kernel.read_bytes()).rootfs.data_size
        base_data = peek_kernel_bundle(old.kernel.read_bytes()).rootfs.data_size
        squash_old = head(old.rootfs, base_data, tmp / "old.squashfs")
        squash_new = head(new.rootfs, data_size, tmp / "new.squashfs")
        make_delta(old.rootfs, new.rootfs, tmp / "with-tree.delta.zst")  # as if the tree
        tree_delta = (tmp / "with-tree.delta.zst").stat().st_size       # were shipped too
        del squash_old, squash_new
        reuse = block_reuse(old.rootfs, base_data, new.rootfs, data_size)
        make_delta(plain_old, plain_new, tmp / "plain.delta.zst")
        plain = {"uncompressed_squashfs_bytes": plain_new.stat().st_size,
                 "delta_bytes": (tmp / "plain.delta.zst").stat().st_size,
                 "what": "the same trees (without osbuild's own files) as squashfs with "
                         "nothing compressed (-noI -noD -noF -noX), same zstd --patch-from"}

    changed_bytes = sum(c["after"] for c in changed.values())
    out.update({
        "full_rootfs_bytes": full_bytes,
        "full_rootfs_squashfs_bytes": data_size,
        "full_rootfs_hash_tree_bytes": full_bytes - data_size,
        "delta_bytes": delta_bytes,
        "ratio_delta_over_full": round(delta_bytes / full_bytes, 5),
        "changed_files": changed,
        "changed_bytes": changed_bytes,
        "ratio_delta_over_changed_bytes": round(delta_bytes / changed_bytes, 3),
        "delta_build_s": round(delta_s[0], 2),
        "patch_release_build_s": round(patch_build_s, 2),
        "delta_apply": {**median_of([a["seconds"] for a in applies]),
                        "zstd_peak_rss_kib": max(a["zstd_peak_rss_kib"] for a in applies)},
        "applied_matches_full": applied_sha == info["rootfs_sha384"],
        "applied_sha384_s": round(verify_s, 3),
        "zstd19_full": {"bytes": zstd_bytes, "seconds": round(zstd_s, 2),
                        "ratio_over_full": round(zstd_bytes / full_bytes, 4),
                        "ratio_delta_over_zstd19": round(delta_bytes / zstd_bytes, 5),
                        "cmd": "zstd -19 rootfs.img"},
        "where_the_delta_goes": {
            "what": "the delta carries squashfs data only; the gateway rebuilds the hash "
                    "tree from the data and the signed salt",
            "delta_if_the_hash_tree_were_included_bytes": tree_delta,
            "saved_by_rebuilding_the_tree": round(1 - delta_bytes / tree_delta, 3),
            **reuse,
        },
        "uncompressed_squashfs_comparison": plain,
    })
    if not out["applied_matches_full"]:
        raise SystemExit(json.dumps(out, indent=2) + "\nthe applied delta is not the full image")
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_apply(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="rootfs tree in MiB of files")
    parser.add_argument("--repeat", type=int, default=3, help="timed delta applies")
    parser.add_argument("--quick", action="store_true", help="CI smoke: --size 8 --repeat 1")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeat = 8, 1
    if args.size < 1 or args.repeat < 1:
        parser.error("--size and --repeat must be at least 1")
    start = time.perf_counter()
    result = run(args.size, args.repeat)
    result["bench_wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
