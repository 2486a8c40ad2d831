"""The fleet server's detectors over one simulated cohort, as its ingest runs them.

For each report, what ``services/telemetry.py`` and ``services/detect.py`` do, without
the database: the boot id (a new one marks the gateway ``fresh`` for ``FRESH``), every
watched metric through its :class:`MetricWatch` (judged against the cohort's level now,
starting from the cohort's prior), listening ports and remote hosts new to the gateway
and rare in its cohort (:func:`new_and_rare`; learning for its first 20 reports). For
each security event, as it arrives, what ``services/eventrules.py`` does: failed logins
past ``LOGINS`` within ``LOGIN_WINDOW``, and a new listening port or remote host (the
agent scans every 2 s) judged as the report's. A boot id that comes back right after
another replaced it is a clone (the registry's rule on check-ins, which come as often as
reports: :mod:`edgeward.server.detection.clones`). An alert is held back when the same
one (kind, app) was raised on that gateway within ``QUIET``; a cohort-shift is one
notice per cohort and metric per ``QUIET``.

Each watch's baseline is a :class:`.fastbaseline.FastBaseline` (the same verdicts, for
less). As the server's ``Cohorts`` does for a large cohort, the cohort's prior is
recomputed every ``PRIOR_FOR`` seconds from every gateway's median (the asking one's
too: one of hundreds); the cohort's level is exact (the server's, in a large cohort,
stands for ``LEVEL_FOR`` seconds).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from edgeward.server.detection import metrics
from edgeward.server.detection.baseline import Prior, cohort_prior
from edgeward.server.detection.clones import BootTrail
from edgeward.server.detection.rarity import new_and_rare
from edgeward.server.detection.watch import MIN_COHORT, MetricWatch
from edgeward.server.services import alerts, cohorts, eventrules, telemetry
from edgeward.sim.fastbaseline import fast_watch
from edgeward.sim.levels import Levels
from edgeward.sim.telemetry import Event, Sample

FRESH = telemetry.FRESH.total_seconds()  # after a boot or a new release
LEARNING_REPORTS = 20  # as services/telemetry.ingest: a gateway's first reports
QUIET = alerts.QUIET.total_seconds()  # one alert of a kind per gateway and app
LOGINS, LOGIN_WINDOW = eventrules.LOGINS, eventrules.LOGIN_WINDOW.total_seconds()


@dataclass(frozen=True)
class Alert:
    at: float
    gateway: str
    kind: str  # e.g. anomaly.cpu_percent, drift.net_tx_rate, new-remote, login.bruteforce
    app: str = ""
    detail: str = ""


@dataclass
class _Gateway:
    watches: dict[str, MetricWatch] = field(default_factory=dict)
    boot_id: str = ""
    boot_changed_at: float | None = None
    trail: BootTrail = field(default_factory=BootTrail)
    logins: deque[tuple[float, int]] = field(default_factory=deque)  # (at, failed)
    known: set[tuple[str, str]] = field(default_factory=set)
    reports: int = 0
    last: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, app) -> at


class CohortDetectors:
    def __init__(self, name: str, prior_every: float = cohorts.PRIOR_FOR) -> None:
        self.name = name
        self.prior_every = prior_every
        self.levels = Levels()
        self.gateways: dict[str, _Gateway] = {}
        self.medians: dict[str, dict[str, float]] = {}  # key -> gateway -> its median
        self.priors: dict[str, Prior] = {}
        self.priors_at = float("-inf")
        self.seen: Counter[tuple[str, str]] = Counter()  # endpoint -> gateways seen with it
        self.alerts: list[Alert] = []
        self.notices: list[Alert] = []  # cohort-shift notices (the cohort's, not a gateway's)
        self.after_change = 0  # anomalies explained by a boot or a new release
        self._noticed: dict[str, float] = {}

    # --- the cohort's prior -----------------------------------------------------------
    def refresh(self, now: float, warming: bool = False) -> None:
        """Recompute the cohort's priors if due (every step while ``warming``)."""
        if not warming and now - self.priors_at < self.prior_every:
            return
        self.priors_at = now
        for key, medians in self.medians.items():
            prior = self._prior(key, list(medians.values()))
            self.priors[key] = prior
            for state in self.gateways.values():
                watch = state.watches.get(key)
                if watch is not None:  # taken up at the baseline's next recomputation
                    watch.baseline.prior = prior

    @staticmethod
    def _prior(key: str, medians: list[float]) -> Prior:
        spec = metrics.spec_of(key)
        assert spec is not None
        if len(medians) < MIN_COHORT:
            return spec.prior
        made = cohort_prior(medians, spec.prior.weight)
        return Prior(made.median, max(made.mad, spec.prior.mad), made.weight)

    # --- one report ---------------------------------------------------------------------
    def observe(self, sample: Sample) -> None:
        serial, at = sample.serial, sample.at
        state = self.gateways.get(serial)
        if state is None:
            state = self.gateways[serial] = _Gateway()
        if sample.boot_id != state.boot_id:
            if state.boot_id:
                state.boot_changed_at = at
            state.boot_id = sample.boot_id
        if state.trail.observe(sample.boot_id):
            self._alert(state, Alert(at, serial, "cloned-identity",
                                     detail="two boot ids alternate"))
        fresh = state.boot_changed_at is not None and at - state.boot_changed_at < FRESH
        for key, value in sample.values.items():
            watch = state.watches.get(key)
            if watch is None:
                others = self.medians.get(key, {})
                prior = self._prior(key, [m for g, m in others.items() if g != serial])
                watch = state.watches[key] = fast_watch(key, prior)
            for signal in watch.observe(value, self.levels.level(key, serial), fresh):
                if signal.kind in ("anomaly", "drift"):
                    self._alert(state, Alert(at, serial,
                                             f"{signal.kind}.{metrics.split(key)[1]}",
                                             signal.app, signal.describe()))
                elif signal.kind == "cohort-shift":
                    if at - self._noticed.get(key, float("-inf")) >= QUIET:
                        self._noticed[key] = at
                        self.notices.append(Alert(at, "", f"cohort-shift.{key}", signal.app,
                                                  signal.describe()))
                elif signal.kind == "after-change":
                    self.after_change += 1
            self.medians.setdefault(key, {})[serial] = watch.baseline.centre()[0]
        self.levels.record(serial, at, sample.values)
        current = [("listen", f"{proto}/{port}", app, process)
                   for proto, port, process, app in sample.listening]
        current += [("remote", host, app, process) for host, _, process, app in sample.remotes]
        for event in sample.events:  # pushed at once: before the report that follows
            self._event(state, serial, event)
        self._endpoints(state, serial, at, current)
        state.reports += 1

    def _event(self, state: _Gateway, serial: str, event: Event) -> None:
        """A security event, judged as it arrives (``services/eventrules.py``)."""
        if event.kind == "login":
            state.logins.append((event.at, event.count))
            while state.logins and state.logins[0][0] < event.at - LOGIN_WINDOW:
                state.logins.popleft()
            failed = sum(count for _, count in state.logins)
            if failed >= LOGINS:
                self._alert(state, Alert(event.at, serial, "login.bruteforce", "",
                                         f"{failed} failed logins"))
        elif event.kind in ("listen", "remote"):
            d = event.detail
            value = f"{d['proto']}/{d['port']}" if event.kind == "listen" else str(d["host"])
            self._endpoints(state, serial, event.at,
                            [(event.kind, value, event.app, str(d.get("process", "")))])

    def _endpoints(self, state: _Gateway, serial: str, at: float,
                   current: list[tuple[str, str, str, str]]) -> None:
        new = [(kind, value, app, process) for kind, value, app, process in current
               if (kind, value) not in state.known]
        if not new:
            return
        size = len(self.gateways) - 1
        learning = state.reports < LEARNING_REPORTS
        for kind in ("listen", "remote"):
            found = {value: (app, process) for k, value, app, process in new if k == kind}
            seen = {value: self.seen[(kind, value)] for value in found}
            for value in new_and_rare(found, set(), seen, size, learning):
                app, process = found[value]
                self._alert(state, Alert(at, serial, f"new-{kind}", app,
                                         f"{value} ({process}), seen on {seen[value]} of "
                                         f"{size} others"))
        for kind, value, _, _ in new:
            if (kind, value) not in state.known:
                state.known.add((kind, value))
                self.seen[(kind, value)] += 1

    def _alert(self, state: _Gateway, alert: Alert) -> None:
        """Raised unless the same (kind, app) was, on this gateway, in the quiet window."""
        last = state.last.get((alert.kind, alert.app))
        if last is not None and alert.at - last <= QUIET:
            return
        state.last[(alert.kind, alert.app)] = alert.at
        self.alerts.append(alert)
