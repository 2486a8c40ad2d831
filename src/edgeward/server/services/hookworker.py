"""The thread that posts new alerts to their tenant's web hook (see :mod:`.alerthooks`).

Every ``interval`` seconds it takes, hook by hook, the alerts past the hook's cursor and
posts them oldest first, one request each: 5 s to answer, redirects never followed, any
answer but 2xx a failure, and an address the hook may not reach (:mod:`.hookreach`) a
failure too. A failure stops that hook's round and the hook waits (1 s,
doubling, at most 5 minutes) before the same alert is tried again; a delivery moves the
cursor past it. The database is never held open across a request. Delivery is at least
once: a crash between a post and its record posts that alert again after the restart.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from edgeward import __version__
from edgeward.errors import Error, one_line
from edgeward.server.db.engine import Database
from edgeward.server.db.monitoring import AlertHook
from edgeward.server.services import alerthooks, hookreach
from edgeward.server.services.registry import aware

log = logging.getLogger("edgeward.server")
TIMEOUT_S = 5.0
LATE = dt.timedelta(minutes=2)  # how long a late-committed alert is still looked for
BATCH = 20  # alerts per hook per round
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class _Hook:
    """What the worker remembers of one hook (by id and URL): backoff, alerts posted."""

    failures: int = 0
    next_try: float = 0.0
    seen: dict[int, dt.datetime] | None = None


@dataclass
class HookWorker:
    db: Database
    master: bytes | None = field(repr=False)
    clock: Callable[[], dt.datetime]
    networks: tuple[hookreach.Network, ...] = ()  # besides the public internet
    interval: float = 1.0
    backoff: float = 1.0
    max_backoff: float = 300.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _hooks: dict[tuple[int, str], _Hook] = field(default_factory=dict)

    def start(self) -> HookWorker:
        self._thread = threading.Thread(target=self._loop, name="alert-hooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * TIMEOUT_S + 5)

    def _loop(self) -> None:
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, headers={
                "user-agent": f"edgeward/{__version__}",
                "content-type": "application/json"}) as client:
            while not self._stop.wait(self.interval):
                try:
                    self.round(client)
                except Exception:  # keep posting: the database may be back next round
                    log.exception("alert hook round failed")

    def round(self, client: httpx.Client) -> int:
        """One pass over every hook; how many alerts were delivered."""
        if self.master is None:
            return 0
        delivered = 0
        with self.db.transaction() as session:
            hooks = [(h.id, h.url) for h in alerthooks.hooks(session)]
        self._hooks = {k: v for k, v in self._hooks.items() if k in hooks}
        for key in hooks:
            if self._stop.is_set():
                break
            memory = self._hooks.setdefault(key, _Hook())
            if memory.next_try <= time.monotonic():
                delivered += self._serve(client, key, memory)
        return delivered

    def _serve(self, client: httpx.Client, key: tuple[int, str], memory: _Hook) -> int:
        now = self.clock()
        assert self.master is not None
        try:
            with self.db.transaction() as session:
                hook = session.get(AlertHook, key[0])
                if hook is None or hook.url != key[1]:
                    return 0
                if memory.seen is None:
                    memory.seen = alerthooks.seen_within(session, hook, now, LATE)
                memory.seen = {i: at for i, at in memory.seen.items()
                               if aware(at) >= now - LATE}
                pending = alerthooks.due(session, self.master, hook, now, LATE,
                                         set(memory.seen), BATCH)
        except Error as e:  # its key does not decrypt (the row was altered): say so, wait
            with self.db.transaction() as session:
                alerthooks.failed(session, key[0], key[1], e.message)
            self._wait(memory, key[0], None, e.message)
            return 0
        delivered = 0
        for delivery in pending:
            error = post(client, delivery, self.networks)
            with self.db.transaction() as session:
                still = alerthooks.outcome(session, delivery, error)
            if not still:
                return delivered
            if error is not None:
                self._wait(memory, delivery.hook_id, delivery.alert_id, error)
                return delivered
            memory.failures, memory.next_try = 0, 0.0
            memory.seen[delivery.alert_id] = delivery.at
            delivered += 1
        return delivered

    def _wait(self, memory: _Hook, hook_id: int, alert_id: int | None, error: str) -> None:
        memory.failures += 1
        delay = min(self.max_backoff, self.backoff * 2 ** min(memory.failures - 1, 30))
        memory.next_try = time.monotonic() + delay
        log.warning("alert hook delivery failed", extra={"fields": {
            "hook": hook_id, "alert": alert_id, "error": error, "retry_in_s": delay}})


def post(client: httpx.Client, delivery: alerthooks.Delivery,
         allow: tuple[hookreach.Network, ...] = ()) -> str | None:
    """Post one alert to the address its host resolves to, once that is allowed; None
    when the receiver took it (2xx), else why not (one line)."""
    parts = urlsplit(delivery.url)
    host = parts.hostname or ""
    try:
        address = hookreach.resolve(host, parts.port or DEFAULT_PORTS.get(parts.scheme, 443),
                                   allow)
        pinned = f"[{address}]" if ":" in address else address
        answer = client.post(
            parts._replace(netloc=f"{pinned}:{parts.port}" if parts.port else pinned).geturl(),
            content=delivery.body, extensions={"sni_hostname": host}, headers={
                "host": parts.netloc, "x-edgeward-signature": delivery.signature,
                "x-edgeward-delivery": str(delivery.alert_id)})
    except (httpx.HTTPError, UnicodeError) as e:  # UnicodeError: a name IDNA refuses
        return one_line(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    except Error as e:
        return e.message
    if answer.is_redirect:
        return one_line(f"answered {answer.status_code} (a redirect, to "
                        f"{answer.headers.get('location', '?')[:100]}): redirects are not followed")
    if not answer.is_success:
        return f"answered {answer.status_code}"
    return None
