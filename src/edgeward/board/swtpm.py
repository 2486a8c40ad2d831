"""A software TPM 2.0 (swtpm) standing in for a virtual board's chip.

One state directory is one chip: :func:`manufacture` runs ``swtpm_setup`` on it
once (TPM 2.0, SHA-256 and SHA-384 PCR banks), which draws the chip's seeds;
every primary key derived from them (storage, endorsement) is then fixed for
that directory, and an object sealed by it loads on no other.
:func:`start` runs ``swtpm socket`` on it on two free loopback ports (commands,
then control on the next one, as the swtpm TCTI expects) with ``Startup(CLEAR)``
sent for us; :meth:`SoftwareTpm.stop` shuts it down. Stop then start again on
the same directory is a reboot: PCRs reset, NV indices and seeds persist.

The state directory holds the chip's secrets: it is kept 0700, its files 0600.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType

from edgeward.errors import ToolError

HOST = "127.0.0.1"
STATE_FILE = "tpm2-00.permall"
LOG_FILE = "swtpm.log"
CMD_SHUTDOWN = 3  # swtpm control channel: save state and exit
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PORT_TRIES = 8


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolError(f"{name} is not installed (run scripts/bootstrap)")
    return path


def _log_tail(state_dir: Path) -> str:
    try:
        lines = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1][:200]}" if lines else ""


def _private(state_dir: Path) -> None:
    os.chmod(state_dir, 0o700)
    for entry in state_dir.iterdir():
        if entry.is_file():
            os.chmod(entry, 0o600)


def manufacture(state_dir: Path) -> None:
    """Make ``state_dir`` a TPM 2.0 chip with a SHA-384 bank, unless it already is one."""
    if (state_dir / STATE_FILE).exists():
        return
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private(state_dir)
    command = [_tool("swtpm_setup"), "--tpm2", "--tpmstate", str(state_dir),
               "--pcr-banks", "sha256,sha384", "--config", os.devnull, "--not-overwrite",
               "--tpm", f"{_tool('swtpm')} socket"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"swtpm_setup on {state_dir} did not finish in 60 s") from e
    if done.returncode != 0 or not (state_dir / STATE_FILE).exists():
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ToolError(f"swtpm_setup failed on {state_dir}: {last[0][:200]}")
    _private(state_dir)


def _free_pair() -> int:
    """A loopback port P with P+1 free too (both free now; swtpm may still lose a race)."""
    for _ in range(64):
        with socket.socket() as first:
            first.bind((HOST, 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((HOST, port + 1))
                except OSError:
                    continue
                return port
    raise ToolError("found no two adjacent free loopback ports for swtpm")


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


class SoftwareTpm:
    """A running swtpm; ``tcti`` is what tpm2-pytss (``ESAPI(tcti)``) connects with."""

    def __init__(self, state_dir: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.state_dir = state_dir
        self.port = port
        self.process = process

    @property
    def tcti(self) -> str:
        return f"swtpm:host={HOST},port={self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Shut the chip down (state saved); killing it is the last resort."""
        if not self.running:
            return
        with contextlib.suppress(OSError), \
                socket.create_connection((HOST, self.port + 1), timeout=STOP_TIMEOUT) as ctrl:
            ctrl.sendall(struct.pack(">I", CMD_SHUTDOWN))
            ctrl.recv(4)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _private(self.state_dir)

    def __enter__(self) -> SoftwareTpm:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _launch(state_dir: Path, port: int) -> subprocess.Popen[bytes]:
    command = [_tool("swtpm"), "socket", "--tpm2",
               "--tpmstate", f"dir={state_dir},mode=0600",
               "--server", f"type=tcp,port={port},bindaddr={HOST}",
               "--ctrl", f"type=tcp,port={port + 1},bindaddr={HOST}",
               "--flags", "not-need-init,startup-clear"]
    fd = os.open(state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # a session of its own: the chip stays powered when the command that started it
        # ends (the board's power_off stops it, by the port and pid it keeps in RAM)
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                start_new_session=True)
    finally:
        os.close(fd)


def start(state_dir: Path) -> SoftwareTpm:
    """Power on the chip whose state is ``state_dir`` (manufactured on first use)."""
    manufacture(state_dir)
    for _ in range(PORT_TRIES):
        port = _free_pair()
        process = _launch(state_dir, port)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return SoftwareTpm(state_dir, port, process)
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait()
            raise ToolError(f"swtpm on {state_dir} did not answer in {START_TIMEOUT:.0f} s")
        if "in use" not in _log_tail(state_dir):
            raise ToolError(f"swtpm on {state_dir} exited with status "
                            f"{process.returncode}{_log_tail(state_dir)}")
    raise ToolError(f"swtpm on {state_dir}: no free ports after {PORT_TRIES} tries")


def answering(port: int, pid: int) -> bool:
    """Whether the chip started earlier (perhaps by another process) still runs."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return _answers(port)


def stop_started(port: int, pid: int) -> None:
    """Stop a chip another process started, knowing only its port and pid."""
    with contextlib.suppress(OSError), \
            socket.create_connection((HOST, port + 1), timeout=STOP_TIMEOUT) as ctrl:
        ctrl.sendall(struct.pack(">I", CMD_SHUTDOWN))
        ctrl.recv(4)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # ours: reaped
                return
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        os.kill(pid, 9)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
