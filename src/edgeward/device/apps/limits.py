"""An app's resource limits being hit, read from its cgroup's counters: killed at its
memory limit, a fork refused at its pids limit, its CPU quota used up (throttled in
at least half the scheduler periods of a second or so). Each new occurrence becomes a
``limit`` security event; the counters only ever grow, so only the change is news."""

from __future__ import annotations

import time

from edgeward.device.apps import cgroups
from edgeward.device.events import SecurityEvent

CPU_WINDOW = 10  # scheduler periods (of 100 ms) over which CPU throttling is judged


class LimitWatch:
    def __init__(self) -> None:
        self.seen: dict[str, dict[str, int]] = {}

    def forget(self, app: str) -> None:
        self.seen.pop(app, None)

    def check(self, app: str) -> list[SecurityEvent]:
        now = cgroups.counters(cgroups.existing(app))
        before = self.seen.setdefault(app, now)
        found = []
        if now["oom_kill"] > before["oom_kill"]:
            found.append(SecurityEvent(time.time(), app, "limit",
                                       "memory limit reached: killed by the OOM killer",
                                       {"limit": "memory"},
                                       now["oom_kill"] - before["oom_kill"]))
        if now["pids_max"] > before["pids_max"]:
            found.append(SecurityEvent(time.time(), app, "limit",
                                       "pids limit reached: fork refused", {"limit": "pids"},
                                       now["pids_max"] - before["pids_max"]))
        periods = now["cpu_periods"] - before["cpu_periods"]
        if periods < CPU_WINDOW:  # judge the CPU over a second or so, not a tick
            now = dict(now, cpu_periods=before["cpu_periods"],
                       cpu_throttled=before["cpu_throttled"])
        elif (throttled := now["cpu_throttled"] - before["cpu_throttled"]) * 2 >= periods:
            found.append(SecurityEvent(time.time(), app, "limit",
                                       "CPU limit reached: throttled",
                                       {"limit": "cpu", "periods": periods,
                                        "throttled": throttled}))
        self.seen[app] = now
        return found
