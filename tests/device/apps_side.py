"""Installed apps for the supervisor and runtime tests, without the TUF round trip (that
is tests/updates/test_app_install.py's subject): a real squashfs image, built by
``edgeward app build``'s code, placed and mounted where the store keeps revisions."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device import keyring
from edgeward.device.apps import cgroups, store
from edgeward.device.storage import volume
from edgeward.files import sha384_file, traversable_dir
from edgeward.release import appimage
from tests.conftest import remove_scratch, scratch_dir


def build(where: Path, name: str, files: dict[str, str], manifest: str,
          version: str = "1.0", publisher: str = "acme") -> Path:
    source = where / f"src-{name}-{version}"
    source.mkdir(parents=True)
    (source / "app.toml").write_text(
        f'name = "{name}"\nversion = "{version}"\npublisher = "{publisher}"\n'
        f'summary = "test app"\n{manifest}')
    for rel, text in files.items():
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    return appimage.build(source, where / "images").path


def sideload(board: VirtualBoard, image: Path, name: str, version: str) -> store.Installed:
    folder = traversable_dir(volume.app_dir(board, name) / version)
    shutil.copy(image, folder / store.IMAGE)
    (folder / store.DIGEST).write_text(sha384_file(image) + "\n")  # as TUF would vouch
    store.mount(folder / store.IMAGE, folder / "root")
    store.switch(board, name, version)
    return store.current(board, name)


def install(board: VirtualBoard, name: str, files: dict[str, str], manifest: str = "",
            version: str = "1.0", publisher: str = "acme") -> store.Installed:
    image = build(board.root / "build", name, files, manifest, version, publisher)
    return sideload(board, image, name, version)


@pytest.fixture
def board() -> Iterator[VirtualBoard]:
    """A gateway's data area under /var/tmp (apps' users must be able to reach it)."""
    root = scratch_dir("edgeward-gw-")
    root.chmod(0o755)
    gateway = VirtualBoard.create(root / "gw")
    volume_key = os.urandom(32)  # an encrypted data area, as a verified boot opens it
    volume.format_volume(gateway, volume_key)
    keyring.remember(gateway, keyring.DATA_VOLUME, volume_key)
    try:
        yield gateway
    finally:
        for name in store.installed(gateway):
            group = cgroups.existing(name)
            cgroups.kill(group)
            store.remove(gateway, name)
            cgroups.remove(group)
        remove_scratch(root)
