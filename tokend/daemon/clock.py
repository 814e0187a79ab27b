"""Noticing suspend/resume and wall-clock jumps, without a polling loop.

Credentials expire by the wall clock, but the event loop's timers count
monotonic time, which stands still while a laptop sleeps and ignores a clock
that is set. After either, background refreshes would run late. This module
notices both and calls back, so the broker can refresh at once what is no
longer fresh (``Broker.wake``).

How, without waking up an idle daemon:

- On Linux, a ``timerfd`` on ``CLOCK_REALTIME`` armed with
  ``TFD_TIMER_CANCEL_ON_SET`` becomes readable (``ECANCELED``) whenever the
  wall clock is set discontinuously: ``settimeofday``, an NTP step, and resume
  from suspend (the kernel signals a clock change on resume). The timer itself
  is armed a year ahead; it never fires in practice.
- Everywhere, ``check()`` compares how far the wall clock and the monotonic
  clock moved since the last look; the daemon calls it whenever something
  wakes the loop anyway (a refresh timer firing, a watchdog ping). This is the
  whole mechanism where there is no timerfd (macOS): a sleep there still
  makes the next refresh timer fire late, and that firing notices the jump.
  Expiry itself is checked against the wall clock on every request, so
  nothing expired is ever served in between.

``CLOCK_BOOTTIME`` (Linux; it keeps counting during suspend) tells a resume
from a clock that was set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tokend.core.durations import format_duration

log = logging.getLogger(__name__)

#: Drift between the clocks below this is noise (and harmless: min_ttl is minutes).
JUMP_THRESHOLD = 2.0
#: How far ahead the timerfd is armed; it only exists to be cancelled.
ARM_AHEAD = 365 * 86400

# <sys/timerfd.h>
TFD_CLOEXEC = 0o2000000
TFD_NONBLOCK = 0o4000
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2


@dataclass(frozen=True)
class Jump:
    """The wall clock moved ``skew`` seconds more than monotonic time did."""

    skew: float
    #: Seconds spent suspended, when the platform can tell (CLOCK_BOOTTIME).
    suspended: float | None
    trigger: str

    @property
    def kind(self) -> str:
        if self.suspended is not None and self.suspended >= JUMP_THRESHOLD:
            return "resume"
        return "clock-set"

    def describe(self) -> str:
        if self.kind == "resume":
            assert self.suspended is not None
            return f"resumed after {format_duration(self.suspended)} suspended"
        direction = "forward" if self.skew > 0 else "back"
        return f"wall clock jumped {direction} by {format_duration(abs(self.skew))}"


def _boottime() -> float | None:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is None:
        return None
    try:
        return time.clock_gettime(clock)
    except OSError:
        return None


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A Linux timerfd on CLOCK_REALTIME that turns readable when the clock is set."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, "timerfd is Linux only")
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            self._create = libc.timerfd_create
            self._settime = libc.timerfd_settime
        except AttributeError:
            raise OSError(errno.ENOSYS, "libc has no timerfd_create") from None
        self._create.argtypes = [ctypes.c_int, ctypes.c_int]
        self._create.restype = ctypes.c_int
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        ]
        self._settime.restype = ctypes.c_int
        self._wall = wall
        fd = self._create(time.CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd: int = fd
        try:
            self.arm()
        except OSError:
            os.close(fd)
            raise

    def arm(self) -> None:
        """(Re-)arm: one absolute expiry far ahead, cancelled when the clock is set."""
        spec = _Itimerspec()
        spec.it_value.tv_sec = int(self._wall()) + ARM_AHEAD
        flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
        if self._settime(self.fd, flags, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def consume(self) -> bool:
        """Read the event; True when it says the clock was set (``ECANCELED``)."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno != errno.ECANCELED:
                raise
            self.arm()
            return True
        self.arm()  # a year passed: keep watching
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ClockWatcher:
    """Calls ``on_jump`` when the wall clock moved apart from monotonic time.

    The clocks are constructor arguments so tests can move them by hand.
    """

    def __init__(
        self,
        on_jump: Callable[[Jump], None],
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        boottime: Callable[[], float | None] = _boottime,
        threshold: float = JUMP_THRESHOLD,
    ) -> None:
        self._on_jump = on_jump
        self._wall = wall
        self._monotonic = monotonic
        self._boottime = boottime
        self._threshold = threshold
        self._timerfd: TimerFd | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._base = self._read()

    def _read(self) -> tuple[float, float, float | None]:
        return self._wall(), self._monotonic(), self._boottime()

    @property
    def uses_timerfd(self) -> bool:
        return self._timerfd is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch for clock changes from ``loop`` (a timerfd where the platform has one)."""
        self._base = self._read()
        try:
            self._timerfd = TimerFd(self._wall)
        except OSError as e:
            log.info("no timerfd (%s): clock jumps are noticed when a timer fires", e.strerror or e)
            return
        self._loop = loop
        loop.add_reader(self._timerfd.fd, self._on_readable)

    def close(self) -> None:
        if self._timerfd is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):  # the loop may be closed already
                    self._loop.remove_reader(self._timerfd.fd)
            self._timerfd.close()
            self._timerfd = None

    def _on_readable(self) -> None:
        assert self._timerfd is not None
        try:
            was_set = self._timerfd.consume()
        except OSError as e:
            log.warning("clock watcher failed, relying on timer checks from now on: %s", e)
            self.close()
            return
        if was_set:
            log.debug("the kernel signalled a clock change")
            self.check("clock change signalled")

    def check(self, trigger: str = "timer") -> Jump | None:
        """Compare the clocks with the last look; report (and return) a jump."""
        wall, mono, boot = self._read()
        wall0, mono0, boot0 = self._base
        self._base = (wall, mono, boot)
        elapsed = mono - mono0
        skew = (wall - wall0) - elapsed
        if abs(skew) < self._threshold:
            return None
        suspended = None if boot is None or boot0 is None else (boot - boot0) - elapsed
        jump = Jump(skew=skew, suspended=suspended, trigger=trigger)
        log.info("%s (%s): refreshing what is no longer fresh", jump.describe(), trigger)
        self._on_jump(jump)
        return jump
