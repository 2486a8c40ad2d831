"""The running agent's control socket: how ``edgeward device apps start|stop|status``
reach its supervisor.

A unix socket in the agent's data (``edgeward/agent.sock``, root's alone, 0600):
one JSON request per connection, one JSON answer. Only root on the gateway can
connect; nothing here is reachable over the network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeward.board.base import Board
from edgeward.errors import (
    Error,
    InputError,
    NotAvailable,
    SecurityError,
    StateError,
    ToolError,
)

log = logging.getLogger("edgeward.agent")
SOCKET = "agent.sock"
LIMIT = 1 << 16

Handler = Callable[[dict[str, Any]], Any]


def socket_path(board: Board) -> Path:
    return board.data_dir / "edgeward" / SOCKET


class ControlServer:
    def __init__(self, board: Board, handlers: dict[str, Handler]) -> None:
        self.path = socket_path(board)
        self.handlers = handlers
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(30)
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(self._answer(conn)).encode() + b"\n")

    def _answer(self, conn: socket.socket) -> dict[str, Any]:
        try:
            raw = b""
            while not raw.endswith(b"\n") and len(raw) < LIMIT:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                raw += chunk
            request = json.loads(raw)
            if not isinstance(request, dict) or request.get("op") not in self.handlers:
                raise InputError(f"unknown request (known: {', '.join(sorted(self.handlers))})")
            for key in ("app", "daemon"):
                if not isinstance(request.get(key, ""), str | None):
                    raise InputError(f"{key} must be a name")
            return {"ok": True, "result": self.handlers[request["op"]](request)}
        except Error as e:
            return {"ok": False, "error": e.message, "code": e.exit_code}
        except (ValueError, OSError, KeyError, TypeError) as e:
            return {"ok": False, "error": f"bad request: {e!r}", "code": 3}
        except Exception as e:  # the control thread outlives any one request
            log.exception("control request failed")
            return {"ok": False, "error": f"the agent failed: {type(e).__name__}", "code": 1}


def call(board: Board, op: str, **args: Any) -> Any:
    """Ask the running agent; StateError when no agent runs on this gateway."""
    path = socket_path(board)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise StateError("the agent is not running on this gateway (start it with "
                         "edgeward device agent)") from e
    except OSError as e:
        raise StateError(f"the agent did not answer: {e.strerror or e}") from e
    finally:
        sock.close()
    try:
        answer = json.loads(raw)
    except ValueError as e:
        raise StateError("the agent's answer was not understood") from e
    if not answer.get("ok"):
        kind = {3: InputError, 4: SecurityError, 6: StateError, 7: ToolError,
                8: NotAvailable}.get(int(answer.get("code", 1)), Error)
        raise kind(str(answer.get("error", "refused")))
    return answer.get("result")
