"""The systemd units start commands that exist, with options the CLI accepts."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "packaging" / "systemd"


@pytest.mark.parametrize("unit", ["edgeward-server.service", "edgeward-agent.service"])
def test_unit_exec_start_is_a_real_command(unit: str) -> None:
    lines = (UNITS / unit).read_text().splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == "/usr/bin/edgeward"
    words = [a for a in argv[1:] if not a.startswith("-")][:2]
    help_text = subprocess.run([sys.executable, "-m", "edgeward", *words, "--help"],
                               capture_output=True, text=True, check=True).stdout
    for option in (a for a in argv if a.startswith("--")):
        assert option in help_text, f"{unit}: {option} is not an option of {words}"
    assert "NoNewPrivileges=yes" in lines and "UMask=0077" in lines
