"""Keeping monitoring's tables bounded, in the background: metrics rolled up and old
roll-ups dropped (:func:`metricstore.compact`), log lines past ``LOGS_FOR`` pruned
(:func:`logstore.prune`), receipts past a week dropped. Each pass works in chunks, each
chunk a transaction of its own, so the server's ingest never waits long on it."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from edgeward.server.db.engine import Database
from edgeward.server.services import logstore, metricstore

log = logging.getLogger("edgeward.server")
EVERY_S = 600.0
LOGS_FOR = dt.timedelta(days=30)
MAX_CHUNKS = 200  # per pass: the rest waits for the next


def tidy(db: Database, now: dt.datetime) -> dict[str, int]:
    """One pass: what was rolled up or dropped."""
    total = {"points": 0, "fine": 0, "coarse": 0, "receipts": 0, "log_lines": 0}
    for _ in range(MAX_CHUNKS):
        with db.transaction() as session:
            done = metricstore.compact(session, now)
        for key, count in done.items():
            total[key] += count
        if not any(done.values()):
            break
    with db.transaction() as session:
        total["log_lines"] = logstore.prune(session, now - LOGS_FOR)
    return total


def keep_tidy(db: Database, clock: Callable[[], dt.datetime], stop: threading.Event
              ) -> threading.Thread:
    """Tidy now and every ``EVERY_S`` seconds until ``stop``."""
    def loop() -> None:
        while True:
            try:
                done = tidy(db, clock())
                if any(done.values()):
                    log.info("retention: %s", done)
            except Exception:  # the next round may succeed
                log.exception("retention pass failed")
            if stop.wait(EVERY_S):
                return

    thread = threading.Thread(target=loop, name="retention", daemon=True)
    thread.start()
    return thread
