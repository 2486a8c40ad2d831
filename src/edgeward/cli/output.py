"""Printing for the CLI: JSON for machines, rich for people (stderr for progress)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def report(data: Any, as_json: bool, show: Callable[[Any], None]) -> None:
    """JSON for machines, ``show`` for people."""
    if as_json:
        emit_json(data)
    else:
        show(data)


@contextmanager
def byte_progress(label: str) -> Iterator[Any]:
    """A progress bar on stderr (only on a terminal); yields ``update(done, total)``."""
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err_console, transient=True,
                  disable=not err_console.is_terminal) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
