"""``--refresh-on-repeat``: the same caller (found in /proc) again within the window is a refresh."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import FakeClock
from tokend.client import fastpath
from tokend.daemon.repeat import REPEAT_WINDOW, RepeatTracker, caller_of


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


def _proc(root: Path, pid: int, comm: str, ppid: int, start: int) -> None:
    (root / str(pid)).mkdir()
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(start), "0", "0"]
    (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(rest)}\n")


def test_the_caller_is_the_nearest_ancestor_that_is_not_a_shell(tmp_path: Path) -> None:
    _proc(tmp_path, 10, "claude", 1, 500)
    _proc(tmp_path, 20, "sh", 10, 600)
    _proc(tmp_path, 21, "bash", 20, 601)
    _proc(tmp_path, 30, "tokend-print", 21, 700)
    assert caller_of(30, proc=str(tmp_path)) == "10:500"
    _proc(tmp_path, 31, "tokend-print", 10, 702)  # run directly, as Codex does
    assert caller_of(31, proc=str(tmp_path)) == "10:500"


def test_a_reused_pid_is_a_new_caller(tmp_path: Path) -> None:
    _proc(tmp_path, 10, "claude", 1, 500)
    _proc(tmp_path, 30, "tokend-print", 10, 700)
    before = caller_of(30, proc=str(tmp_path))
    (tmp_path / "10" / "stat").unlink()
    (tmp_path / "10").rmdir()
    _proc(tmp_path, 10, "claude", 1, 9000)  # another process got pid 10
    assert caller_of(30, proc=str(tmp_path)) != before


def test_a_comm_with_parentheses_and_spaces_is_parsed(tmp_path: Path) -> None:
    _proc(tmp_path, 10, "a) S 99 (x", 1, 500)
    _proc(tmp_path, 30, "tokend-print", 10, 700)
    assert caller_of(30, proc=str(tmp_path)) == "10:500"


def test_no_caller_when_proc_does_not_tell(tmp_path: Path) -> None:
    assert caller_of(0, proc=str(tmp_path)) is None  # peer in another pid namespace
    assert caller_of(30, proc=str(tmp_path)) is None  # gone
    _proc(tmp_path, 30, "tokend-print", 20, 700)
    _proc(tmp_path, 20, "sh", 1, 600)
    assert caller_of(30, proc=str(tmp_path)) is None  # only shells up to init

