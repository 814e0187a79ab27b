"""The clock watcher: jumps of the wall clock against monotonic time, timerfd plumbing."""

from __future__ import annotations

import asyncio
import os
import select
import sys

import pytest

from tokend.daemon import clock as clock_mod
from tokend.daemon.clock import ClockWatcher, Jump, TimerFd


class Clocks:
    """Wall, monotonic and boot clocks the test moves by hand."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 1000.0
        self.boot: float | None = 1000.0

    def awake(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
        if self.boot is not None:
            self.boot += seconds

    def suspend(self, seconds: float) -> None:
        self.wall += seconds
        if self.boot is not None:
            self.boot += seconds

    def watcher(self, jumps: list[Jump]) -> ClockWatcher:
        return ClockWatcher(
            jumps.append, wall=lambda: self.wall, monotonic=lambda: self.mono, boottime=lambda: self.boot
        )


def test_no_jump_while_the_clocks_agree() -> None:
    c, jumps = Clocks(), []
    w = c.watcher(jumps)
    c.awake(3600)
    assert w.check() is None
    c.awake(0.5)
    c.wall += 1.0  # an NTP step below the threshold is noise
    assert w.check() is None
    assert jumps == []


def test_suspend_is_reported_as_resume() -> None:
    c, jumps = Clocks(), []
    w = c.watcher(jumps)
    c.awake(10)
    c.suspend(7200)
    c.awake(1)
    jump = w.check("test")
    assert jump is not None and jumps == [jump]
    assert jump.kind == "resume"
    assert jump.skew == pytest.approx(7200)
    assert jump.suspended == pytest.approx(7200)
    assert "resumed after 2h" in jump.describe()
    # The baseline moved: the same jump is not reported twice.
    c.awake(5)
    assert w.check() is None


def test_clock_set_forward_and_back() -> None:
    c, jumps = Clocks(), []
    w = c.watcher(jumps)
    c.wall += 3 * 3600
    forward = w.check()
    assert forward is not None and forward.kind == "clock-set" and forward.skew == pytest.approx(10800)
    assert "forward by 3h" in forward.describe()
    c.wall -= 600
    back = w.check()
    assert back is not None and back.kind == "clock-set" and "back by 10m" in back.describe()


def test_without_boottime_a_jump_is_still_seen() -> None:
    """macOS: no CLOCK_BOOTTIME; suspend shows as a clock jump, which is all wake() needs."""
    c, jumps = Clocks(), []
    c.boot = None
    w = c.watcher(jumps)
    c.suspend(3600)
    jump = w.check()
    assert jump is not None and jump.suspended is None and jump.kind == "clock-set"


def test_clock_change_signal_triggers_a_check() -> None:
    c, jumps = Clocks(), []
    w = c.watcher(jumps)

    class SignalledTimerFd:
        fd = -1

        def consume(self) -> bool:
            return True

        def close(self) -> None:
            pass

    w._timerfd = SignalledTimerFd()  # type: ignore[assignment]
    c.suspend(600)
    w._on_readable()
    assert len(jumps) == 1 and jumps[0].trigger == "clock change signalled"


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux only")


@linux_only
def test_timerfd_is_armed_and_quiet() -> None:
    tfd = TimerFd()
    try:
        # Armed a year ahead: not readable, and reading says "nothing happened".
        readable, _, _ = select.select([tfd.fd], [], [], 0)
        assert readable == []
        assert tfd.consume() is False
        assert os.get_inheritable(tfd.fd) is False
    finally:
        tfd.close()


@linux_only
def test_watcher_registers_its_timerfd_with_the_loop() -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        w = ClockWatcher(lambda jump: None)
        w.start(loop)
        fd = w._timerfd.fd if w._timerfd else -1
        registered = loop.remove_reader(fd)
        loop.add_reader(fd, w._on_readable)
        uses = w.uses_timerfd
        w.close()
        return uses, registered

    uses, registered = asyncio.run(main())
    assert uses and registered


def test_without_timerfd_the_watcher_degrades(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on macOS: start() logs and leaves check() as the only mechanism."""

    def no_timerfd(*args: object) -> TimerFd:
        raise OSError(38, "timerfd is Linux only")

    monkeypatch.setattr(clock_mod, "TimerFd", no_timerfd)
    c, jumps = Clocks(), []
    w = c.watcher(jumps)

    async def main() -> bool:
        w.start(asyncio.get_running_loop())
        return w.uses_timerfd

    assert asyncio.run(main()) is False
    c.suspend(900)
    assert w.check() is not None and len(jumps) == 1
    w.close()


@linux_only
@pytest.mark.skipif(
    os.environ.get("TOKEND_TEST_SET_CLOCK") != "1" or os.geteuid() != 0,
    reason="opt-in (TOKEND_TEST_SET_CLOCK=1, root): sets the system clock to its own value",
)
def test_the_kernel_signals_a_set_clock_through_the_timerfd() -> None:
    """clock_settime(now) is a step of microseconds, but a step: the timerfd must fire."""
    import time

    jumps: list[Jump] = []

    async def main() -> None:
        w = ClockWatcher(jumps.append, threshold=-1.0)  # report even a zero-size jump
        w.start(asyncio.get_running_loop())
        assert w.uses_timerfd
        await asyncio.sleep(0.05)
        assert jumps == []
        time.clock_settime(time.CLOCK_REALTIME, time.clock_gettime(time.CLOCK_REALTIME))
        for _ in range(40):
            await asyncio.sleep(0.05)
            if jumps:
                break
        w.close()

    asyncio.run(main())
    assert [j.trigger for j in jumps] == ["clock change signalled"]
