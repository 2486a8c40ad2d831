"""The gateway's TUF client: python-tuf ``ngclient``, rooted in the booted rootfs.

The trust anchor is the root metadata shipped inside the verified rootfs of
the slot that booted (read with ``unsquashfs -cat`` after the boot chain
verified that rootfs); newer roots are fetched and checked by ngclient
against it, and cached with everything else under ``/data/edgeward/tuf``.
TUF's errors become edgeward's, saying what was refused.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater

from edgeward.board.base import Board, rootfs_partition
from edgeward.device.updates.fetcher import MtlsFetcher
from edgeward.errors import (
    Error,
    IntegrityError,
    RollbackError,
    SecurityError,
    SignatureError,
    StateError,
    ToolError,
    Unreachable,
)
from edgeward.files import private_dir
from edgeward.trust import publication
from edgeward.trust.targets import TUF_ROOT

TUF_PATH = "/v1/gateway/tuf"


def tuf_dir(board: Board) -> Path:
    return private_dir(board.data_dir / "edgeward" / "tuf")


def shipped_root(board: Board, slot: str) -> bytes:
    """The TUF root metadata inside the rootfs of ``slot``."""
    tool = shutil.which("unsquashfs")
    if tool is None:
        raise ToolError("unsquashfs not found (Debian package squashfs-tools)")
    image = board.partition_path(rootfs_partition(slot))
    try:
        done = subprocess.run([tool, "-cat", str(image), TUF_ROOT], check=True,
                              capture_output=True, timeout=60)
    except subprocess.CalledProcessError as e:
        raise StateError(f"the rootfs in slot {slot} ships no TUF root ({TUF_ROOT}): this OS "
                         "cannot take signed updates") from e
    return done.stdout


def refused(error: Exception, what: str) -> Error:
    """A TUF failure as the edgeward error that says what was refused."""
    if isinstance(error, tuf_errors.DownloadLengthMismatchError):
        return IntegrityError(f"{what}: more data than signed: refused ({error})")
    if isinstance(error, tuf_errors.DownloadError):
        return Unreachable(f"{what}: download failed: {error}")
    if isinstance(error, tuf_errors.BadVersionNumberError):
        return RollbackError(f"{what}: metadata rollback refused: {error}")
    if isinstance(error, tuf_errors.ExpiredMetadataError):
        return SecurityError(f"{what}: expired metadata refused (freeze attack or a stale "
                             f"mirror): {error}")
    if isinstance(error, tuf_errors.UnsignedMetadataError):
        return SignatureError(f"{what}: metadata not signed by the trusted keys: {error}")
    if isinstance(error, tuf_errors.LengthOrHashMismatchError):
        return IntegrityError(f"{what}: metadata or target does not match what is signed: "
                              f"{error}")
    if isinstance(error, tuf_errors.RepositoryError):
        return SecurityError(f"{what}: repository refused: {error}")
    return SecurityError(f"{what}: {type(error).__name__}: {error}")


class TufClient:
    """One refresh of the repository and target lookups against it."""

    def __init__(self, board: Board, server: str, context: ssl.SSLContext, slot: str) -> None:
        self.server = server.rstrip("/")
        self.fetcher = MtlsFetcher(context)
        self.targets_url = f"{self.server}{TUF_PATH}/targets/"
        try:
            self.updater = Updater(str(tuf_dir(board)), f"{self.server}{TUF_PATH}/metadata/",
                                   None, self.targets_url, self.fetcher,
                                   bootstrap=shipped_root(board, slot))
        except (tuf_errors.RepositoryError, ValueError) as e:
            raise refused(e, "TUF root shipped in the rootfs") from e

    def _refused(self, error: Exception, what: str) -> Error:
        """As :func:`refused`, naming the metadata file that was being checked."""
        last = self.fetcher.last_url
        if last.startswith(f"{self.server}{TUF_PATH}/metadata/"):
            what = f"{what}, checking {last.rpartition('/')[2]}"
        return refused(error, what)

    def refresh(self) -> None:
        try:
            self.updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
            raise self._refused(e, "TUF refresh") from e

    def target(self, path: str) -> TargetFile:
        try:
            found = self.updater.get_targetinfo(path)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
            raise self._refused(e, f"target {path}") from e
        if found is None:
            raise SecurityError(f"target {path} is not signed by the role trusted for it")
        if set(found.hashes) != {publication.HASH}:
            raise IntegrityError(f"target {path}: signed without a {publication.HASH} hash")
        return found

    def url(self, target: TargetFile) -> str:
        """Consistent-snapshot URL: ``dir/<sha384>.<name>``."""
        directory, _, name = target.path.rpartition("/")
        return f"{self.targets_url}{directory}/{target.hashes[publication.HASH]}.{name}"

    def verify(self, target: TargetFile, path: Path) -> None:
        try:
            with path.open("rb") as f:
                target.verify_length_and_hashes(f)
        except tuf_errors.LengthOrHashMismatchError as e:
            raise IntegrityError(f"{target.path}: downloaded file does not match its signed "
                                 f"length and {publication.HASH}") from e

    def close(self) -> None:
        self.fetcher.close()
