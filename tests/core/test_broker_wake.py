"""``Broker.wake``: catching up after a suspend/resume or a wall-clock jump.

The broker's timers count monotonic time; expiry is wall clock. These tests
move only the wall clock (as a resumed laptop sees it), never fire the timer
that would have been due, and check that nothing expired is served and that
the refresh starts at once.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ClassVar

import pytest

from tests.conftest import FakeClock
from tokend.core import config, policy
from tokend.core.broker import Broker
from tokend.core.config import Config, Profile
from tokend.core.credential import Credential
from tokend.core.errors import SourceError
from tokend.daemon.clock import ClockWatcher, Jump
from tokend.sources.base import BaseSource, FetchRequest

HOUR = 3600.0

CONFIG = """\
[profiles.p]
source = "demo"

[profiles.q]
source = "demo"
"""


class CountingSource(BaseSource):
    """A new token per fetch, valid for an hour of the (fake) wall clock."""

    name = "counting"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, profile: str, clock: Callable[[], float]) -> None:
        super().__init__(profile, {}, clock=clock)
        self.calls = 0
        self.fail = False

    def fetch(self, request: FetchRequest) -> Credential:
        self.calls += 1
        if self.fail:
            raise SourceError("upstream down", retryable=True)
        now = self.clock()
        return Credential.bearer(
            f"{self.profile}-{self.calls}", expires_at=now + HOUR, issued_at=now, source=self.name
        )


class HeldExecutor(Executor):
    """Holds submitted jobs until the test runs them (outside the broker's lock)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs.append((fn, args))
        fut: Future[Any] = Future()
        return fut

    def run_all(self) -> int:
        n = 0
        while self.jobs:
            fn, args = self.jobs.pop(0)
            fn(*args)
            n += 1
        return n


class Timer:
    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """Records timers; the test fires them (or, like a suspended machine, does not)."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(delay, fn)
        self.timers.append(timer)
        return timer

    def armed(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled]


class World:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.executor = HeldExecutor()
        self.scheduler = Scheduler()
        self.sources: dict[str, CountingSource] = {}
        cfg: Config = config.parse(textwrap.dedent(CONFIG), None)
        self.broker = Broker(
            cfg,
            clock=clock,
            executor=self.executor,
            scheduler=self.scheduler,
            rng=random.Random(7),
            source_factory=self._make,
        )

    def _make(self, profile: Profile, clock: Callable[[], float]) -> BaseSource:
        src = CountingSource(profile.name, clock)
        self.sources[profile.name] = src
        return src

    def get(self, name: str) -> Credential:
        """A request: served from the cache, or after the (held) fetch is run."""
        result = self.broker.lookup(name)
        if isinstance(result, Credential):
            return result
        self.executor.run_all()
        return result.result(timeout=0)


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


def test_jump_past_expiry_refreshes_at_once_and_never_serves_the_expired(world: World) -> None:
    first = world.get("p")
    assert world.sources["p"].calls == 1
    # The laptop sleeps through the expiry: no timer fires, the wall clock moves 2 h.
    world.clock.advance(2 * HOUR)
    assert first.expires_at is not None and first.expires_at < world.clock()

    assert world.broker.wake() == ["p"]
    assert len(world.executor.jobs) == 1, "the refresh starts at wake, not at the next request"
    # A request arriving before the refresh completes waits for it: no expired token.
    pending = world.broker.lookup("p")
    assert isinstance(pending, Future)
    world.executor.run_all()
    fresh = pending.result(timeout=0)
    assert fresh.fields["token"] == "p-2"
    assert fresh.expires_at is not None and fresh.expires_at > world.clock() + policy.DEFAULT_MIN_TTL
    assert world.sources["p"].calls == 2
    # The new credential's own refresh timer is armed again.
    assert world.broker.status()[0]["next_refresh"] is not None


def test_jump_into_the_stale_window_refreshes_at_once(world: World) -> None:
    world.get("p")
    world.clock.advance(50 * 60)  # past 2/3 of the hour, not yet expired
    assert world.broker.wake() == ["p"]
    served = world.broker.lookup("p")
    assert isinstance(served, Credential) and served.fields["token"] == "p-1", "stale is still served"
    world.executor.run_all()
    assert world.get("p").fields["token"] == "p-2"


def test_small_jump_re_arms_the_timer_for_its_wall_clock_time(world: World) -> None:
    world.get("p")
    due = world.broker.status()[0]["next_refresh"]
    assert isinstance(due, float)
    world.clock.advance(10 * 60)
    assert world.broker.wake() == []
    assert world.executor.jobs == []
    timer = world.scheduler.armed()[-1]
    assert timer.delay == pytest.approx(due - world.clock())


def test_profiles_never_used_or_idle_are_left_alone(world: World) -> None:
    world.get("p")
    world.get("q")
    world.clock.advance(policy.IDLE_STOP + HOUR)
    assert world.broker.wake() == []
    assert world.executor.jobs == []
    # ... but a request still never gets the expired credential.
    assert isinstance(world.broker.lookup("p"), Future)


def test_a_refresh_already_running_is_not_duplicated(world: World) -> None:
    world.get("p")
    world.clock.advance(2 * HOUR)
    assert isinstance(world.broker.lookup("p"), Future)  # a request started the fetch
    assert world.broker.wake() == []
    assert len(world.executor.jobs) == 1


def test_backoff_is_kept_while_the_credential_is_usable(world: World) -> None:
    world.get("p")
    world.sources["p"].fail = True
    world.clock.advance(45 * 60)  # stale: the background refresh runs and fails
    assert world.broker.wake() == ["p"]
    world.executor.run_all()
    row = world.broker.status()[0]
    assert row["failures"] == 1 and isinstance(row["next_refresh"], float)
    # A jump that leaves the credential usable and the retry in the future: wait for it.
    world.clock.advance(0.5)
    assert world.broker.wake() == []
    # A jump past expiry: refresh now, whatever the backoff said.
    world.clock.advance(2 * HOUR)
    assert world.broker.wake() == ["p"]


def test_clock_watcher_drives_wake(world: World) -> None:
    """The daemon's wiring: a wall-clock jump seen by the watcher refreshes at once."""
    mono = [100.0]
    boot = [500.0]
    jumps: list[Jump] = []

    def on_jump(jump: Jump) -> None:
        jumps.append(jump)
        world.broker.wake()

    watcher = ClockWatcher(on_jump, wall=world.clock, monotonic=lambda: mono[0], boottime=lambda: boot[0])
    world.get("p")
    mono[0] += 60
    boot[0] += 60 + 2 * HOUR
    world.clock.advance(60 + 2 * HOUR)  # one minute awake, two hours suspended
    jump = watcher.check()
    assert jump is not None and jump.kind == "resume" and jump.suspended == pytest.approx(2 * HOUR)
    assert jumps == [jump]
    assert len(world.executor.jobs) == 1
    world.executor.run_all()
    assert world.get("p").fields["token"] == "p-2"
