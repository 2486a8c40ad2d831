"""Options shared by several commands."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edgeward.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])
PASSPHRASE_ENV = "EDGEWARD_PASSPHRASE"  # noqa: S105 (the variable name, not a secret)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")(f)


def passphrase_option(f: F) -> F:
    return click.option(
        "--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
        help=f"File holding the passphrase of the offline keys (or set {PASSPHRASE_ENV}).",
    )(f)


def read_passphrase(path: Path | None) -> bytes | None:
    if path is not None:
        try:
            text = path.read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise InputError(f"passphrase file {path} is not readable") from e
        if not text:
            raise InputError(f"passphrase file {path} is empty")
        return text
    env = os.environ.get(PASSPHRASE_ENV)
    return env.encode() if env else None


def device_option(f: F) -> F:
    return click.option("--device", "device", required=True,
                        type=click.Path(file_okay=False, path_type=Path),
                        help="The virtual gateway's directory.")(f)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
