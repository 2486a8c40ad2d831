"""Update tests run in a real world (tests/updates/world.py): the expensive parts
(keys, the factory's release, the repository's first metadata) are made once per
session and copied per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.updates.world import MODEL, World, make, serve

__all__ = ["MODEL", "World"]


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("mksquashfs")
    require_tool("zstd")
    root = tmp_path_factory.mktemp("update-world")
    make(root)
    return root


@pytest.fixture
def world(world_template: Path, tmp_path: Path) -> Iterator[World]:
    for name in ("server", "ws", "factory"):
        shutil.copytree(world_template / name, tmp_path / name)
    with serve(tmp_path) as running:
        yield running
