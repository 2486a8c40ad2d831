"""Orders from the fleet server (remediation), carried out on the gateway.

``GET /v1/gateway/actions`` gives what an operator ordered, oldest first; each is done
here and reported (``POST /v1/gateway/actions/<id>``, done or failed, with a line on
how). Stopping an app is the operator stop (it stays stopped until started again);
cutting an app's network restarts it without any (:mod:`apps.remedy`); quarantine cuts
every app's. The agent's own channels to the server (updates, monitoring, these orders)
stay open: that is how a quarantine is lifted. An audit order runs the hardening audit
now (the monitoring's, which sends its findings with its next delivery).
"""

from __future__ import annotations

from collections.abc import Callable

from edgeward.api_client import ApiClient
from edgeward.board.base import Board
from edgeward.device.apps import remedy, store
from edgeward.device.apps.runtime import AppRuntime
from edgeward.errors import Error, InputError, StateError

KINDS = ("stop-app", "cut-network", "restore-network", "quarantine", "release", "audit")
Audit = Callable[[], list[dict[str, str]]]


def carry_out(board: Board, runtime: AppRuntime | None, action: str, app: str,
              audit: Audit | None = None) -> str:
    """Do one order; return what was done (raises Error when it cannot be done)."""
    if action not in KINDS:
        raise InputError(f"unknown order {action!r}")
    if action == "audit":
        if audit is None:
            raise StateError("monitoring is off on this gateway: no audit to send")
        found = audit()
        high = sum(1 for f in found if f.get("severity") == "high")
        return f"hardening audit run: {len(found)} findings ({high} high), sent to the server"
    if action in ("stop-app", "cut-network", "restore-network"):
        store.current(board, app)  # an installed app, or NotFound
    if action == "stop-app":
        if runtime is None:
            raise InputError("the apps are not running here: nothing to stop")
        runtime.supervisor.stop_app(app)
        return f"app {app} stopped (until an operator starts it)"
    if action == "cut-network":
        remedy.cut(board, app)
        _restart(runtime, {app})
        return f"app {app} restarted without network"
    if action == "restore-network":
        remedy.restore(board, app)
        _restart(runtime, {app})
        return f"app {app} restarted with its network"
    if action == "quarantine":
        remedy.quarantine(board)
        _restart(runtime, set(store.installed(board)))
        return "quarantined: every app restarted without network; the agent keeps its " \
               "channels to the fleet server"
    remedy.release(board)
    _restart(runtime, set(store.installed(board)))
    return "quarantine lifted: apps restarted with their network"


def _restart(runtime: AppRuntime | None, apps: set[str]) -> None:
    if runtime is not None and apps:
        runtime.supervisor.restart(apps)


def follow(board: Board, runtime: AppRuntime | None, client: ApiClient,
           say: Callable[[str], None], audit: Audit | None = None
           ) -> list[tuple[int, str, str]]:
    """Fetch, carry out and report the pending orders; return (id, status, result)."""
    done = []
    for order in client.call("GET", "/v1/gateway/actions").get("actions", []):
        ident, action, app = int(order["id"]), str(order["action"]), str(order.get("app") or "")
        try:
            status, result = "done", carry_out(board, runtime, action, app, audit)
        except Error as e:
            status, result = "failed", e.message
        say(f"order {ident} ({action}{' ' + app if app else ''}): {status}: {result}")
        client.call("POST", f"/v1/gateway/actions/{ident}",
                    {"status": status, "result": result[:300]})
        done.append((ident, status, result))
    return done
