"""Root filesystem images: a read-only squashfs with its hash tree appended.

The squashfs is made by ``mksquashfs`` (reproducibly: fixed times, root-owned
files); :func:`seal` then appends the SHA-384 hash tree and returns the tree
parameters the kernel bundle signs. The image has no password for any account
and no getty on a console: root is locked, there is no default user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import ToolError
from edgeward.files import write_atomic
from edgeward.trust import hashtree

OS_NAME = "edgeward OS"


@dataclass(frozen=True)
class SealedRootfs:
    path: Path
    params: hashtree.TreeParams
    size: int


def _tree_files(version: str, model: str, security_version: int) -> dict[str, str]:
    release = {"name": OS_NAME, "version": version, "model": model,
               "security_version": security_version}
    return {
        "etc/os-release": f'NAME="{OS_NAME}"\nID=edgeward\nVERSION_ID="{version}"\n',
        "etc/edgeward/release.json": json.dumps(release, sort_keys=True) + "\n",
        # Every account is locked: no password exists to guess or to leave at a default.
        "etc/passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                      "edgeward:x:999:999:edgeward agent:/var/lib/edgeward:/usr/sbin/nologin\n",
        "etc/shadow": "root:*:19000:0:99999:7:::\nedgeward:!:19000::::::\n",
        "etc/group": "root:x:0:\nedgeward:x:999:\n",
        # No getty on any serial console; ssh is not installed.
        "etc/inittab": "# edgeward: no login on any console\n",
        "usr/lib/edgeward/os-stage": "edgeward OS stage: measure, unseal, lock\n",
    }


def mksquashfs(source: Path, out: Path) -> None:
    tool = shutil.which("mksquashfs")
    if tool is None:
        raise ToolError("mksquashfs not found (Debian package squashfs-tools): "
                        "run scripts/bootstrap")
    cmd = [tool, str(source), str(out), "-noappend", "-all-root", "-no-xattrs", "-quiet",
           "-no-progress", "-mkfs-time", "0", "-all-time", "0", "-processors", "1"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    except subprocess.CalledProcessError as e:
        raise ToolError(f"mksquashfs failed: {e.stderr.decode(errors='replace').strip()}") from e


def seal(raw: Path, out: Path, salt: bytes | None = None) -> SealedRootfs:
    """Pad ``raw`` to whole blocks, append its hash tree, write ``out`` atomically."""
    salt = salt if salt is not None else os.urandom(32)
    bs = hashtree.BLOCK_SIZE
    size = raw.stat().st_size
    data_size = size + (-size % bs)
    with raw.open("rb") as f:
        fd = f.fileno()

        def read(offset: int, n: int) -> bytes:
            chunk = os.pread(fd, n, offset)
            return chunk + bytes(n - len(chunk))  # the zero padding past the end

        root, tree = hashtree.build(read, data_size, salt, bs)

        def chunks() -> object:
            for off in range(0, data_size, 1 << 20):
                yield read(off, min(1 << 20, data_size - off))
            yield tree

        write_atomic(out, chunks(), mode=0o644)  # type: ignore[arg-type]
    params = hashtree.TreeParams(data_size, data_size, bs, salt, root)
    return SealedRootfs(out, params, data_size + len(tree))


def build(out: Path, version: str, model: str, security_version: int,
          extra: dict[str, bytes] | None = None, base_tree: Path | None = None,
          salt: bytes | None = None) -> SealedRootfs:
    """Build the OS rootfs for ``version`` as a sealed squashfs at ``out``: the files of
    ``base_tree`` (if any), then edgeward's own, then ``extra``. Reusing the previous
    release's ``salt`` keeps the hash tree of unchanged blocks unchanged (small deltas)."""
    with tempfile.TemporaryDirectory(prefix="edgeward-rootfs-") as tmp:
        tree = Path(tmp) / "root"
        if base_tree is not None:
            shutil.copytree(base_tree, tree, symlinks=True)
        files: dict[str, bytes] = {k: v.encode() for k, v in
                                   _tree_files(version, model, security_version).items()}
        files.update(extra or {})
        for rel, content in files.items():
            path = tree / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        (tree / "etc/shadow").chmod(0o640)
        squash = Path(tmp) / "rootfs.squashfs"
        mksquashfs(tree, squash)
        return seal(squash, out, salt)
