"""``--refresh-on-repeat``: the helper sends its parent's pid; a repeat within the window is a refresh."""

from __future__ import annotations

import os

from tests.conftest import FakeClock
from tokend.client import fastpath
from tokend.daemon.repeat import REPEAT_WINDOW, RepeatTracker


def test_window_is_just_under_codexs_refresh_interval() -> None:
    # Codex re-runs its auth command on its own every refresh_interval_ms (300 s
    # by default): that scheduled re-run must not count as a repeat.
    assert 280 <= REPEAT_WINDOW < 300


def test_first_request_of_a_caller_is_not_a_repeat(clock: FakeClock) -> None:
    tracker = RepeatTracker(clock=clock)
    assert tracker.repeated("vertex", "100") is False
    assert tracker.repeated("other", "100") is False  # per profile
    assert tracker.repeated("vertex", "200") is False  # per caller


def test_the_same_caller_again_within_the_window_is_a_repeat(clock: FakeClock) -> None:
    tracker = RepeatTracker(clock=clock)
    tracker.repeated("vertex", "100")
    clock.advance(5)  # a 401, then Codex runs the command again
    assert tracker.repeated("vertex", "100") is True
    clock.advance(REPEAT_WINDOW + 1)  # Codex's scheduled re-run
    assert tracker.repeated("vertex", "100") is False


def test_memory_stays_bounded(clock: FakeClock) -> None:
    tracker = RepeatTracker(clock=clock, max_callers=10)
    for pid in range(100):
        tracker.repeated("vertex", str(pid))
        clock.advance(0.001)
    assert len(tracker) <= 10
    assert tracker.repeated("vertex", "99") is True  # the newest are kept
    clock.advance(REPEAT_WINDOW + 1)
    for pid in range(1000, 1011):
        tracker.repeated("vertex", str(pid))
    assert len(tracker) <= 10


def test_the_helper_sends_its_parents_pid() -> None:
    fields = fastpath.parse_args(["vertex", "--refresh-on-repeat"])
    assert fields == {"profile": "vertex", "repeat_caller": str(os.getppid())}
    assert "refresh" not in fastpath.parse_args(["vertex", "--refresh-on-repeat"])
    assert "--refresh-on-repeat" in fastpath.USAGE


def test_a_caller_that_is_not_a_pid_is_ignored(clock: FakeClock) -> None:
    tracker = RepeatTracker(clock=clock)
    for caller in ("12\nERROR forged", "", "-1", "١٢٣", "1" * 11, "12 "):
        assert tracker.repeated("vertex", caller) is False
        assert tracker.repeated("vertex", caller) is False
    assert len(tracker) == 0
