"""One identity on two devices: boot ids that alternate (the registry's rule, pure)."""

from __future__ import annotations

from edgeward.server.detection.clones import BootTrail, step


def test_boots_that_only_move_forward_are_one_device() -> None:
    trail = BootTrail()
    seen = [trail.observe(boot) for boot in ["a", "a", "b", "b", "b", "c", "d", "d"]]
    assert seen == [False] * 8
    assert (trail.current, trail.previous) == ("d", "c")


def test_an_older_boot_coming_back_is_a_clone_every_time_it_does() -> None:
    trail = BootTrail()
    seen = [trail.observe(boot) for boot in ["a", "b", "a", "b", "b", "a"]]
    assert seen == [False, False, True, True, False, True]


def test_step_is_the_registry_s_update_of_current_and_previous() -> None:
    assert step("", "", "a") == ("a", "", False)
    assert step("b", "a", "b") == ("b", "a", False)
    assert step("b", "a", "a") == ("a", "b", True)
    assert step("b", "a", "c") == ("c", "b", False)
