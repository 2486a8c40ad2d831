"""The server's detectors as the sim runs them over a cohort, on hand-made reports: a rare
endpoint alerted and a common one not, a brute force past the server's threshold (once a
quiet window), a clone, and a boot that explains a jump."""

from __future__ import annotations

from edgeward.sim.detectors import LOGINS, CohortDetectors
from edgeward.sim.telemetry import Event, Sample

T0 = 1_000_000.0
SERVER = ("192.0.2.10", 443, "edgeward-agent", "")


def sample(serial: str, step: int, cpu: float = 10.0, boot: str = "b1",
           remotes: tuple[tuple[str, int, str, str], ...] = (SERVER,),
           events: tuple[Event, ...] = ()) -> Sample:
    return Sample(serial, T0 + 30.0 * step, boot, {"cpu_percent": cpu},
                  [("tcp", 22, "sshd", "")], list(remotes), list(events))


def cohort(steps: int = 40, size: int = 30) -> CohortDetectors:
    detectors = CohortDetectors("test")
    for step in range(steps):
        detectors.refresh(T0 + 30.0 * step, warming=True)
        for n in range(size):
            detectors.observe(sample(f"g{n}", step, cpu=10.0 + (n + step) % 3))
    return detectors


def test_a_host_nobody_else_calls_is_alerted_once_and_a_shared_one_is_not() -> None:
    detectors = cohort()
    pool = ("203.0.113.5", 3333, "xmrig", "weather")
    cloud = ("198.51.100.10", 443, "weather", "weather")
    for n in range(10):  # a third of the cohort moves to another cloud address: rare
        detectors.observe(sample(f"g{n}", 40, remotes=(SERVER, cloud)))  # for the first 5%
    assert [a.gateway for a in detectors.alerts if a.kind == "new-remote"] == ["g0", "g1"]
    for step in (41, 42):
        detectors.observe(sample("g29", step, remotes=(SERVER, pool)))
    raised = [a for a in detectors.alerts if a.kind == "new-remote"][2:]
    assert [(a.gateway, a.app, a.at) for a in raised] == [("g29", "weather", T0 + 30 * 41)]


def test_failed_logins_alert_past_the_server_s_threshold_once_per_quiet_window() -> None:
    detectors = cohort()
    burst = tuple(Event(T0 + 1200 + i, "login", "failed password", 1)
                  for i in range(LOGINS + 30))
    detectors.observe(sample("g3", 41, events=burst))
    raised = [a for a in detectors.alerts if a.kind == "login.bruteforce"]
    assert [a.at for a in raised] == [T0 + 1200 + LOGINS - 1]
    few = tuple(Event(T0 + 1300 + 60 * i, "login", "failed password", 1) for i in range(5))
    detectors.observe(sample("g4", 42, events=few))
    assert [a.gateway for a in detectors.alerts if a.kind == "login.bruteforce"] == ["g3"]


def test_a_clone_is_alerted_and_a_boot_explains_the_jump_after_it() -> None:
    detectors = cohort()
    for step, boot in ((40, "b2"), (41, "b1")):  # a second device; the genuine one again
        detectors.observe(sample("g7", step, boot=boot))
    assert [a.kind for a in detectors.alerts if a.gateway == "g7"] == ["cloned-identity"]
    before = detectors.after_change
    for step in (42, 43, 44):  # g8 reboots into a release that costs 40 points of CPU
        detectors.observe(sample("g8", step, cpu=50.0, boot="b9"))
    assert detectors.after_change == before + 1
    assert not [a for a in detectors.alerts if a.gateway == "g8"]
    for step in (42, 43):  # g9 did not reboot: the same jump is raised
        detectors.observe(sample("g9", step, cpu=50.0))
    assert [a.kind for a in detectors.alerts if a.gateway == "g9"] == ["anomaly.cpu_percent"]
