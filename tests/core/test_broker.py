"""The broker: single flight, background refresh, serve-while-valid, min_ttl, forced refresh.

Everything time-related is driven by hand: a settable clock, an executor that
either runs each job on its own thread (so ``Broker.get`` works) or holds jobs
until the test runs them, and a scheduler whose timers the test fires.
"""

from __future__ import annotations

import json
import random
import secrets
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ClassVar

import pytest

from tokend.core import config, policy
from tokend.core.broker import HUNG_GRACE, Broker
from tokend.core.config import Config, Profile
from tokend.core.credential import Credential
from tokend.core.errors import (
    REDACTOR,
    LoginRequired,
    SourceError,
    SourceTimeout,
    TokendError,
    UnknownProfile,
    scrub,
)
from tokend.core.localcache import LocalCache
from tokend.sources.base import BaseSource, FetchRequest

HOUR = 3600.0

CONFIG = """\
[profiles.p]
source = "demo"
lifetime = "1h"

[profiles.q]
source = "demo"
lifetime = "1h"
"""


def parse(text: str) -> Config:
    return config.parse(textwrap.dedent(text), None)


# -- fakes ------------------------------------------------------------------------


class FakeSource(BaseSource):
    """Counts fetches and returns a different token every time (botocore's IntegerRefresher)."""

    name = "fake"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, profile: str, clock: Callable[[], float], life: float | None) -> None:
        super().__init__(profile, {}, clock=clock)
        self.life = life
        self.error: BaseException | None = None
        self.delay = 0.0
        self.gate: threading.Event | None = None
        self.calls = 0
        self.closed = 0
        self.requests: list[FetchRequest] = []
        self.tokens: list[str] = []
        self._nonce = secrets.token_hex(6)
        self._lock = threading.Lock()

    def fetch(self, request: FetchRequest) -> Credential:
        with self._lock:
            self.calls += 1
            n = self.calls
            self.requests.append(request)
        if self.gate is not None:
            assert self.gate.wait(10), "test never opened the gate"
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        now = self.clock()
        token = f"tok-{self.profile}-{self._nonce}-{n}"
        with self._lock:
            self.tokens.append(token)
        expires = None if self.life is None else now + self.life
        return Credential.bearer(token, expires_at=expires, issued_at=now, source="fake")

    def close(self) -> None:
        self.closed += 1


class Sources:
    """The broker's ``source_factory``: one FakeSource per profile entry it builds."""

    def __init__(self) -> None:
        self.made: dict[str, list[FakeSource]] = {}
        self.presets: dict[str, dict[str, Any]] = {}

    def __call__(self, profile: Profile, clock: Callable[[], float]) -> BaseSource:
        src = FakeSource(profile.name, clock, profile.options.get("lifetime"))
        for key, value in self.presets.get(profile.name, {}).items():
            setattr(src, key, value)
        self.made.setdefault(profile.name, []).append(src)
        return src

    def preset(self, name: str, **attrs: Any) -> None:
        self.presets[name] = attrs

    def __getitem__(self, name: str) -> FakeSource:
        return self.made[name][-1]

    def calls(self, name: str) -> int:
        return sum(s.calls for s in self.made.get(name, []))

    def all_tokens(self) -> list[str]:
        return [t for srcs in self.made.values() for s in srcs for t in s.tokens]


class FakeExecutor(Executor):
    """Runs each job on a thread of its own, or, while ``hold`` is set, keeps it until ``run_pending``."""

    def __init__(self) -> None:
        self.hold = False
        self.queued: deque[Callable[[], None]] = deque()
        self.threads: list[threading.Thread] = []
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        fut: Future[Any] = Future()

        def job() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as e:
                fut.set_exception(e)

        if self.hold:
            self.queued.append(job)
        else:
            t = threading.Thread(target=job, daemon=True)
            self.threads.append(t)
            t.start()
        return fut

    def run_pending(self) -> int:
        """Run the held jobs in this thread (never under the broker's lock)."""
        n = 0
        while self.queued:
            self.queued.popleft()()
            n += 1
        return n

    def drain(self, timeout: float = 10.0) -> None:
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), "a fetch thread is stuck"


class Timer:
    def __init__(self, at: float, delay: float, fn: Callable[[], None]) -> None:
        self.at, self.delay, self.fn = at, delay, fn
        self.cancelled = self.fired = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """Records ``(delay, fn)``; the test advances the clock and fires timers by hand."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.timers: list[Timer] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> Timer:
        assert delay >= 0
        timer = Timer(self.clock() + delay, delay, fn)
        self.timers.append(timer)
        return timer

    @property
    def live(self) -> list[Timer]:
        return [t for t in self.timers if not t.cancelled and not t.fired]

    def only(self) -> Timer:
        live = self.live
        assert len(live) == 1, f"expected one live timer, got {len(live)}"
        return live[0]

    def fire(self, timer: Timer) -> None:
        assert not timer.cancelled and not timer.fired
        timer.fired = True
        timer.fn()


class Harness:
    def __init__(self, clock: Any, text: str = CONFIG, *, store: Any = None) -> None:
        self.clock = clock
        self.sources = Sources()
        self.executor = FakeExecutor()
        self.scheduler = FakeScheduler(clock)
        self.broker = Broker(
            parse(text),
            clock=clock,
            executor=self.executor,
            scheduler=self.scheduler,
            store=store,
            rng=random.Random(1),
            source_factory=self.sources,
        )

    def row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.broker.status() if r["profile"] == name)

    def lookup_cached(self, name: str, **kw: Any) -> Credential:
        """A lookup that must be served from the cache, without waiting."""
        result = self.broker.lookup(name, **kw)
        assert isinstance(result, Credential), "expected a cached credential, got a pending fetch"
        return result

    def close(self) -> None:
        self.executor.hold = False
        self.executor.run_pending()
        self.executor.drain()
        self.broker.close()


@pytest.fixture
def harness(clock: Any) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(text: str = CONFIG, **kw: Any) -> Harness:
        h = Harness(clock, text, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def h(harness: Callable[..., Harness]) -> Harness:
    return harness()


def token(cred: Credential) -> str:
    value = cred.primary
    assert value is not None
    return value


# -- the cache ----------------------------------------------------------------------


def test_first_get_fetches_then_cache_hits(h: Harness) -> None:
    first = h.broker.get("p")
    assert h.sources.calls("p") == 1
    assert h.sources["p"].requests == [FetchRequest(profile="p", timeout=30.0, forced=False)]
    assert first.expires_at == h.clock() + HOUR
    assert first.issued_at == h.clock()
    h.clock.advance(60)
    for _ in range(5):
        assert h.broker.get("p") is first
    assert h.sources.calls("p") == 1
    row = h.row("p")
    assert (row["hits"], row["fetches"], row["state"]) == (5, 1, "fresh")


def test_profiles_are_independent(h: Harness) -> None:
    p, q = h.broker.get("p"), h.broker.get("q")
    assert token(p) != token(q)
    assert (h.sources.calls("p"), h.sources.calls("q")) == (1, 1)


def test_unknown_profile(h: Harness) -> None:
    with pytest.raises(UnknownProfile, match="p, q"):
        h.broker.get("nope")


@pytest.mark.timeout(20)
def test_single_flight_for_concurrent_cold_callers(clock: Any) -> None:
    sources = Sources()
    sources.preset("p", delay=0.3)
    with ThreadPoolExecutor(8) as pool:
        broker = Broker(parse(CONFIG), clock=clock, executor=pool, source_factory=sources)
        n = 32
        barrier = threading.Barrier(n)
        results: list[Credential] = []
        errors: list[BaseException] = []

        def call() -> None:
            barrier.wait()
            try:
                results.append(broker.get("p"))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=call) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        broker.close()
    assert errors == []
    assert len(results) == n
    assert sources.calls("p") == 1
    assert len({token(c) for c in results}) == 1


@pytest.mark.timeout(20)
def test_single_flight_for_concurrent_forced_refreshes(clock: Any) -> None:
    sources = Sources()
    with ThreadPoolExecutor(8) as pool:
        broker = Broker(parse(CONFIG), clock=clock, executor=pool, source_factory=sources)
        first = broker.get("p")
        sources["p"].delay = 0.3
        barrier = threading.Barrier(16)
        results: list[Credential] = []

        def call() -> None:
            barrier.wait()
            results.append(broker.get("p", force=True))

        threads = [threading.Thread(target=call) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        broker.close()
    # one forced fetch; the callers the rate limit turned away got the cached credential
    assert sources.calls("p") == 2
    assert len(results) == 16
    assert {token(c) for c in results} <= {token(first), sources["p"].tokens[-1]}


def test_concurrent_lookups_share_one_pending_fetch(h: Harness) -> None:
    h.executor.hold = True
    futures = [h.broker.lookup("p") for _ in range(10)]
    assert all(isinstance(f, Future) for f in futures)
    assert len({id(f) for f in futures}) == 1
    assert h.executor.run_pending() == 1
    assert h.sources.calls("p") == 1
    fut = futures[0]
    assert isinstance(fut, Future)
    assert fut.result(0) is h.lookup_cached("p")


def test_pending_fetch_cannot_be_cancelled_by_one_waiter(h: Harness) -> None:
    h.executor.hold = True
    fut = h.broker.lookup("p")
    assert isinstance(fut, Future)
    assert fut.cancel() is False  # a closed connection must not cancel the others' fetch
    h.executor.run_pending()
    assert isinstance(h.broker.lookup("p"), Credential)


# -- background refresh ---------------------------------------------------------------


def test_stale_credential_served_while_one_background_refresh_runs(h: Harness) -> None:
    old = h.broker.get("p")
    h.executor.hold = True
    h.clock.advance(2500)  # past 2/3 of the hour: STALE
    assert h.row("p")["state"] == "stale"
    for _ in range(5):
        assert h.lookup_cached("p") is old
    assert len(h.executor.queued) == 1  # exactly one refresh for five callers
    assert h.row("p")["refreshing"] is True
    h.executor.run_pending()
    assert h.sources.calls("p") == 2
    new = h.lookup_cached("p")
    assert token(new) != token(old)
    row = h.row("p")
    assert (row["state"], row["fetches"], row["rotations"], row["refreshing"]) == ("fresh", 2, 1, False)


def test_timer_refreshes_before_the_credential_goes_stale(h: Harness) -> None:
    old = h.broker.get("p")
    timer = h.scheduler.only()
    # 2/3 of the hour, minus up to 5 % jitter
    assert 2400 - HOUR * policy.JITTER_FRACTION <= timer.delay <= 2400
    assert h.row("p")["next_refresh"] == pytest.approx(timer.at)
    h.clock.now = timer.at
    h.broker.lookup("p")  # used recently, still fresh: no fetch of its own
    assert h.sources.calls("p") == 1
    h.scheduler.fire(timer)
    h.executor.drain()
    assert h.sources.calls("p") == 2
    new = h.lookup_cached("p")
    assert token(new) != token(old)
    next_timer = h.scheduler.only()  # and the next one is scheduled
    assert next_timer.at > timer.at


def test_background_failure_serves_old_credential_and_backs_off(h: Harness) -> None:
    old = h.broker.get("p")
    h.executor.hold = True
    h.sources["p"].error = SourceError("upstream said 503 Service Unavailable")
    timer = h.scheduler.only()
    h.clock.now = timer.at
    h.scheduler.fire(timer)
    assert h.executor.run_pending() == 1  # the refresh ran and failed
    assert h.sources.calls("p") == 2

    # the old credential is still served and the error shows in status
    assert h.lookup_cached("p") is old
    row = h.row("p")
    assert row["last_error"] == "upstream said 503 Service Unavailable"
    assert row["failures"] == 1
    assert row["state"] in ("fresh", "stale")
    retry = h.scheduler.only()
    assert 1.0 <= retry.delay <= 2.0  # backoff(1): [1 s, 2 s]
    assert row["next_refresh"] == pytest.approx(retry.at)

    # the retry fails again: the next delay grows
    h.clock.now = retry.at
    h.scheduler.fire(retry)
    h.executor.run_pending()
    second = h.scheduler.only()
    assert 2.0 <= second.delay <= 4.0
    assert h.row("p")["failures"] == 2

    # upstream recovers: a new credential, the error is cleared
    h.sources["p"].error = None
    h.clock.now = second.at
    h.scheduler.fire(second)
    h.executor.run_pending()
    new = h.lookup_cached("p")
    assert token(new) != token(old)
    row = h.row("p")
    assert (row["failures"], row["last_error"]) == (0, None)


def test_stale_lookups_during_backoff_do_not_refetch(h: Harness) -> None:
    old = h.broker.get("p")
    h.executor.hold = True
    h.sources["p"].error = SourceError("upstream timeout")
    h.clock.advance(2500)  # STALE: this lookup starts the refresh
    assert h.lookup_cached("p") is old
    h.executor.run_pending()
    assert h.sources.calls("p") == 2
    retry = h.scheduler.only()
    for _ in range(20):  # a busy daemon: many requests inside the backoff window
        h.clock.advance((retry.at - h.clock()) / 4)
        assert h.lookup_cached("p") is old
        h.executor.run_pending()
    assert h.sources.calls("p") == 2
    h.clock.now = retry.at + 0.01  # the backoff is over: a stale lookup may try again
    assert h.lookup_cached("p") is old
    assert h.executor.run_pending() == 1
    assert h.sources.calls("p") == 3


def test_failure_reaches_the_caller_once_less_than_min_ttl_is_left(h: Harness) -> None:
    old = h.broker.get("p")
    h.sources["p"].error = SourceError("upstream said 503")
    h.clock.advance(HOUR - 400)  # 400 s left > min_ttl 300: still served
    assert h.broker.get("p") is old
    h.executor.drain()
    h.clock.advance(101)  # 299 s left
    with pytest.raises(SourceError, match="upstream said 503") as info:
        h.broker.get("p")
    assert info.value.profile == "p"
    assert info.value.line().startswith("tokend: p: ")
    assert h.row("p")["state"] == "expired"


@pytest.mark.parametrize(
    "error",
    [LoginRequired("run: tokend login p"), SourceError("bad client secret", retryable=False)],
    ids=["login-required", "not-retryable"],
)
def test_non_retryable_failures_are_not_retried_in_background(h: Harness, error: TokendError) -> None:
    old = h.broker.get("p")
    h.executor.hold = True
    h.sources["p"].error = error
    timer = h.scheduler.only()
    h.clock.now = timer.at
    h.scheduler.fire(timer)
    h.executor.run_pending()
    assert h.scheduler.live == []  # no retry timer
    row = h.row("p")
    assert row["last_error"] == error.message
    assert row["next_refresh"] is None
    assert h.lookup_cached("p") is old  # still valid, still served
    h.clock.now = old.issued_at + HOUR - 200  # within min_ttl of expiry: callers need a fetch
    fut = h.broker.lookup("p")
    h.executor.run_pending()
    assert isinstance(fut, Future)
    with pytest.raises(type(error)):
        fut.result(0)


def test_idle_profile_is_not_refreshed_by_the_timer(harness: Callable[..., Harness]) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "48h"\n')
    h.broker.get("p")
    timer = h.scheduler.only()
    assert timer.delay > policy.IDLE_STOP
    h.clock.now = timer.at  # nobody asked for p since the first fetch
    h.scheduler.fire(timer)
    h.executor.drain()
    assert h.sources.calls("p") == 1
    assert h.row("p")["next_refresh"] is None
    assert h.scheduler.live == []


def test_recently_used_profile_is_refreshed_by_the_timer(harness: Callable[..., Harness]) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "48h"\n')
    h.broker.get("p")
    timer = h.scheduler.only()
    h.clock.now = timer.at - policy.IDLE_STOP + 60  # used 12 h minus a minute before the timer
    h.lookup_cached("p")
    h.clock.now = timer.at
    h.scheduler.fire(timer)
    h.executor.drain()
    assert h.sources.calls("p") == 2


def test_idle_profile_comes_back_on_request(harness: Callable[..., Harness]) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "48h"\n')
    old = h.broker.get("p")
    timer = h.scheduler.only()
    h.clock.now = timer.at
    h.scheduler.fire(timer)  # idle: not refreshed
    h.clock.now = old.issued_at + 40 * HOUR  # stale, 8 h left: served, refreshed behind it
    assert h.lookup_cached("p") is old
    h.executor.drain()
    assert h.sources.calls("p") == 2
    assert token(h.lookup_cached("p")) != token(old)
    assert len(h.scheduler.live) == 1  # refreshed ahead of time again


# -- wall-clock checks --------------------------------------------------------------------


def test_clock_jump_past_expiry_never_returns_the_expired_credential(h: Harness) -> None:
    old = h.broker.get("p")
    h.clock.advance(HOUR + 120)  # the laptop slept through the expiry; no timer ran
    result = h.broker.lookup("p")
    assert isinstance(result, Future)
    new = result.result(10)
    assert token(new) != token(old)
    assert new.expires_at == h.clock() + HOUR
    assert h.sources.calls("p") == 2


def test_clock_jump_with_failing_source_raises_instead_of_serving(h: Harness) -> None:
    old = h.broker.get("p")
    h.sources["p"].error = SourceError("network is unreachable")
    h.clock.advance(HOUR + 1)
    with pytest.raises(SourceError, match="network is unreachable") as info:
        h.broker.get("p")
    assert token(old) not in str(info.value)
    # and status does not call it usable either
    assert h.row("p")["state"] == "expired"


def test_clock_jump_into_min_ttl_window(h: Harness) -> None:
    old = h.broker.get("p")
    h.clock.advance(HOUR - 300)  # exactly min_ttl left: not enough
    assert token(h.broker.get("p")) != token(old)


# -- forced refresh ------------------------------------------------------------------------


def test_forced_refresh_is_rate_limited(h: Harness) -> None:
    first = h.broker.get("p")
    forced = h.broker.get("p", force=True)
    assert h.sources.calls("p") == 2
    assert token(forced) != token(first)
    assert h.sources["p"].requests[-1].forced is True
    h.clock.advance(10)
    again = h.broker.get("p", force=True)  # within 30 s: the cached one, no upstream call
    assert again is forced
    assert h.sources.calls("p") == 2
    h.clock.advance(19.9)
    assert h.broker.get("p", force=True) is forced
    h.clock.advance(0.2)  # 30.1 s after the last forced fetch
    third = h.broker.get("p", force=True)
    assert h.sources.calls("p") == 3
    assert token(third) not in (token(first), token(forced))


def test_forced_refresh_on_cold_profile(h: Harness) -> None:
    cred = h.broker.get("p", force=True)
    assert h.sources.calls("p") == 1
    assert h.sources["p"].requests == [FetchRequest(profile="p", timeout=30.0, forced=True)]
    h.clock.advance(5)
    assert h.broker.get("p", force=True) is cred


def test_forced_refresh_uses_the_profile_refresh_limit(harness: Callable[..., Harness]) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "1h"\nrefresh_limit = "2m"\n')
    h.broker.get("p", force=True)
    h.clock.advance(60)
    h.broker.get("p", force=True)
    assert h.sources.calls("p") == 1
    h.clock.advance(61)
    h.broker.get("p", force=True)
    assert h.sources.calls("p") == 2


def test_rate_limited_forced_refresh_still_honours_min_ttl(h: Harness) -> None:
    h.broker.get("p", force=True)
    h.clock.advance(10)
    # rate-limited, and the cached credential has too little life for this caller:
    # an error, never a credential with less than min_ttl, and no upstream call
    with pytest.raises(SourceError, match="refresh_limit"):
        h.broker.get("p", force=True, min_ttl=HOUR - 5)
    assert h.sources.calls("p") == 1
    h.clock.advance(30)  # the rate limit has passed: upstream is asked again
    cred = h.broker.get("p", force=True, min_ttl=HOUR - 5)
    assert h.sources.calls("p") == 2
    assert cred.expires_at == h.clock() + HOUR


def test_forced_refresh_joins_a_running_fetch(h: Harness) -> None:
    h.executor.hold = True
    normal = h.broker.lookup("p")
    forced = h.broker.lookup("p", force=True)
    assert forced is normal
    assert h.executor.run_pending() == 1


# -- min_ttl ----------------------------------------------------------------------------------


def test_request_min_ttl_larger_than_remaining_life_forces_a_fetch(h: Harness) -> None:
    old = h.broker.get("p")
    h.clock.advance(100)  # 3500 s left
    assert h.broker.get("p", min_ttl=3000) is old
    assert h.sources.calls("p") == 1
    new = h.broker.get("p", min_ttl=3550)
    assert h.sources.calls("p") == 2
    assert token(new) != token(old)


def test_check_rejects_a_fresh_credential_shorter_than_min_ttl(harness: Callable[..., Harness]) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "10m"\n')
    with pytest.raises(SourceError, match="this request needs") as info:
        h.broker.get("p", min_ttl=900)
    assert info.value.retryable is False
    assert info.value.profile == "p"
    assert "10m00s left" in info.value.message
    assert "15m00s" in info.value.message
    assert h.broker.get("p", min_ttl=60).primary  # a smaller min_ttl is fine


def test_check_directly(h: Harness) -> None:
    now = h.clock()
    short = Credential.bearer("short-lived-token", expires_at=now + 100, issued_at=now)
    with pytest.raises(SourceError):
        h.broker.check("p", short, None)  # the profile's min_ttl: 300 s
    with pytest.raises(SourceError):
        h.broker.check("p", short, 100)  # exactly min_ttl is not enough
    h.broker.check("p", short, 99)
    h.broker.check("p", Credential.secret("never-expiring-secret"), 10 * HOUR)


def test_credential_born_below_min_ttl_is_not_refetched_in_a_loop(h: Harness) -> None:
    h.sources.preset("p", life=240.0)  # below min_ttl 5m (a fixed lifetime that short: a config error)
    with pytest.raises(SourceError, match="this request needs"):
        h.broker.get("p")
    assert h.scheduler.live == []  # no timer re-running the source every second
    assert h.sources.calls("p") == 1


# -- bad sources ---------------------------------------------------------------------------------


@pytest.mark.parametrize("life", [-10.0, 0.0])
def test_source_returning_an_expired_credential_is_an_error(h: Harness, life: float) -> None:
    h.sources.preset("p", life=life)
    with pytest.raises(SourceError, match="expired") as info:
        h.broker.get("p")
    assert info.value.profile == "p"
    row = h.row("p")
    assert (row["state"], row["fetches"], row["failures"]) == ("error", 1, 1)


def test_source_raising_an_unexpected_exception(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.sources.preset("p", error=RuntimeError("kaboom in the SDK"))
    with pytest.raises(SourceError, match="RuntimeError: kaboom in the SDK") as info:
        h.broker.get("p")
    assert info.value.profile == "p"
    assert "kaboom" in h.row("p")["last_error"]
    assert any("kaboom" in r.getMessage() or r.exc_info for r in caplog.records)  # logged with cause
    h.sources["p"].error = None
    assert h.broker.get("p").primary  # the broker keeps working


def test_source_error_gets_the_profile_name(h: Harness) -> None:
    h.sources.preset("q", error=SourceError("no route to host"))
    with pytest.raises(SourceError) as info:
        h.broker.get("q")
    assert info.value.line() == "tokend: q: no route to host"


@pytest.mark.timeout(10)
def test_get_gives_up_after_its_timeout(h: Harness) -> None:
    h.executor.hold = True  # the fetch never completes
    start = time.monotonic()
    with pytest.raises(SourceTimeout, match="no credential within"):
        h.broker.get("p", timeout=0.1)
    assert time.monotonic() - start < 2.5


def test_hung_fetch_is_abandoned_after_timeout_and_grace(h: Harness) -> None:
    h.executor.hold = True
    first = h.broker.lookup("p")
    h.clock.advance(30 + HUNG_GRACE - 1)
    assert h.broker.lookup("p") is first
    h.clock.advance(2)
    second = h.broker.lookup("p")
    assert isinstance(second, Future) and second is not first
    assert len(h.executor.queued) == 2


def test_max_fetch_timeout_bounds_the_source(clock: Any) -> None:
    sources = Sources()
    broker = Broker(
        parse(CONFIG), clock=clock, executor=FakeExecutor(), source_factory=sources, max_fetch_timeout=2.5
    )
    try:
        broker.get("p")
    finally:
        broker.close()
    assert sources["p"].requests[0].timeout == 2.5


# -- configuration changes --------------------------------------------------------------------------

THREE = """\
[profiles.p]
source = "demo"
lifetime = "1h"
[profiles.q]
source = "demo"
lifetime = "1h"
[profiles.r]
source = "demo"
lifetime = "1h"
"""


def test_reconfigure_drops_only_changed_and_removed_profiles(harness: Callable[..., Harness]) -> None:
    h = harness(THREE)
    p, q, r = h.broker.get("p"), h.broker.get("q"), h.broker.get("r")
    p_timer = next(t for t in h.scheduler.live if t.at == h.row("p")["next_refresh"])
    new = """\
[profiles.p]
source = "demo"
lifetime = "2h"
[profiles.q]
source = "demo"
lifetime = "1h"
[profiles.s]
source = "demo"
lifetime = "1h"
"""
    dropped = h.broker.reconfigure(parse(new))
    assert sorted(dropped) == ["p", "r"]
    assert p_timer.cancelled
    assert h.lookup_cached("q") is q  # unchanged: cached credential kept
    assert h.sources.calls("q") == 1
    p2 = h.broker.get("p")  # changed: fetched again with the new settings
    assert token(p2) != token(p)
    assert p2.expires_at == h.clock() + 2 * HOUR
    assert len(h.sources.made["p"]) == 2
    with pytest.raises(UnknownProfile):
        h.broker.get("r")
    assert h.broker.get("s").primary
    assert [row["profile"] for row in h.broker.status()] == ["p", "q", "s"]
    assert token(r) not in json.dumps(h.broker.status())


def test_reconfigure_with_same_settings_keeps_everything(h: Harness) -> None:
    p = h.broker.get("p")
    assert h.broker.reconfigure(parse(CONFIG)) == []
    assert h.lookup_cached("p") is p


def test_fetch_finishing_after_reconfigure_does_not_pollute_the_new_profile(h: Harness) -> None:
    h.executor.hold = True
    h.broker.lookup("p")
    h.broker.reconfigure(parse(CONFIG.replace('lifetime = "1h"', 'lifetime = "3h"', 1)))
    h.executor.run_pending()  # the old fetch completes for a profile that is gone
    fresh = h.broker.lookup("p")
    assert isinstance(fresh, Future)  # the new profile fetches its own
    h.executor.run_pending()
    assert fresh.result(0).expires_at == h.clock() + 3 * HOUR


def test_forget_drops_the_cached_credential(h: Harness) -> None:
    old = h.broker.get("p")
    q = h.broker.get("q")
    h.broker.forget("p")
    h.broker.forget("never-used")  # harmless
    assert h.row("p")["state"] == "idle"
    new = h.broker.get("p")
    assert token(new) != token(old)
    assert h.lookup_cached("q") is q


def test_close_cancels_timers_and_closes_sources(h: Harness) -> None:
    h.broker.get("p")
    h.broker.get("q")
    timer = next(t for t in h.scheduler.live if t.at == h.row("p")["next_refresh"])
    h.broker.close()
    assert timer.cancelled
    assert h.scheduler.live == []
    assert (h.sources["p"].closed, h.sources["q"].closed) == (1, 1)  # kills commands still running


def test_default_executor_and_no_scheduler(clock: Any) -> None:
    sources = Sources()
    broker = Broker(parse(CONFIG), clock=clock, source_factory=sources)
    try:
        cred = broker.get("p")
        assert broker.get("p") is cred
    finally:
        broker.close()
    assert sources.calls("p") == 1


# -- status and secrets ---------------------------------------------------------------------


def test_status_rows(h: Harness) -> None:
    assert h.broker.status() == [
        {"profile": "p", "source": "demo", "state": "idle", "hits": 0, "fetches": 0},
        {"profile": "q", "source": "demo", "state": "idle", "hits": 0, "fetches": 0},
    ]
    cred = h.broker.get("p")
    h.clock.advance(60)
    h.broker.get("p")
    row = h.row("p")
    assert row["state"] == "fresh"
    assert row["expires_in"] == pytest.approx(HOUR - 60)
    assert row["expires_at"] == cred.expires_iso()
    assert row["last_refresh"] == cred.issued_at
    assert (row["hits"], row["fetches"], row["failures"], row["rotations"]) == (1, 1, 0, 0)
    assert row["refreshing"] is False
    h.clock.advance(HOUR)
    assert h.row("p")["state"] == "expired"


def test_status_never_contains_a_credential(h: Harness) -> None:
    h.broker.get("p")
    h.broker.get("q")
    h.broker.get("p", force=True)
    served = h.sources.all_tokens()
    # an upstream that echoes the token in its error message
    h.sources["q"].error = SourceError(f"token {served[-1]} was rejected: 401")
    h.clock.advance(HOUR - 100)
    with pytest.raises(SourceError) as info:
        h.broker.get("q")
    rows = h.broker.status()
    text = json.dumps(rows) + repr(rows) + str(info.value) + info.value.line()
    assert len(served) == 3
    for value in served:
        assert value not in text
    assert "***" in h.row("q")["last_error"]


def test_redactor_masks_a_served_token(h: Harness) -> None:
    cred = h.broker.get("p")
    value = token(cred)
    assert scrub(f"Authorization: Bearer {value}") == "Authorization: Bearer ***"
    assert value not in SourceError(f"bad token {value}").line()
    assert REDACTOR(f"x{value}x") == "x***x"


def test_redactor_masks_a_token_that_failed_the_expiry_check(h: Harness) -> None:
    # even a credential the broker rejects has been seen: it must never be logged
    h.sources.preset("p", life=-1.0)
    with pytest.raises(SourceError):
        h.broker.get("p")
    (value,) = h.sources["p"].tokens
    assert value not in scrub(f"leaked {value}")


# -- daemonless: the shared store --------------------------------------------------------------


def test_brokers_share_credentials_through_the_store(
    harness: Callable[..., Harness], short_tmp: str, clock: Any
) -> None:
    cache = LocalCache(short_tmp + "/cache", clock=clock)
    one = harness(store=cache)
    two = harness(store=cache)  # another process, in effect
    cred = one.broker.get("p")
    got = two.lookup_cached("p")
    assert got.fields == cred.fields
    assert two.sources.calls("p") == 0
    clock.advance(HOUR + 1)  # expired in the store: not served
    fetched = two.broker.get("p")
    assert token(fetched) != token(cred)
    assert two.sources.calls("p") == 1


def test_store_copy_must_satisfy_the_callers_min_ttl(
    harness: Callable[..., Harness], short_tmp: str, clock: Any
) -> None:
    cache = LocalCache(short_tmp + "/cache", clock=clock)
    one = harness(store=cache)
    two = harness(store=cache)
    cred = one.broker.get("p")
    clock.advance(200)  # 3400 s left in the shared copy
    assert two.broker.get("p", min_ttl=3000).fields == cred.fields
    fresher = two.broker.get("p", min_ttl=3500)  # the shared copy is too short for this caller
    assert token(fresher) != token(cred)
    assert fresher.expires_at == clock() + HOUR
    assert two.sources.calls("p") == 1
