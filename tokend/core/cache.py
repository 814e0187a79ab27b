"""The credential cache: per profile one fetch at a time, refreshed ahead of expiry, backed off on failure.

Per profile: one upstream fetch at a time (single flight), a background
refresh before the credential goes stale, the old credential kept while a
failing refresh backs off, a wall-clock check on every lookup and a rate
limit on forced refreshes and on demands the source cannot meet. Fetches run
in a thread pool; ``lookup`` never blocks on upstream. ``tokend.core.broker``
builds the one request path on it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Protocol

from tokend.core import policy
from tokend.core.answers import BadAnswer, accepted, sane
from tokend.core.config import Config, Profile
from tokend.core.credential import Credential
from tokend.core.durations import format_duration
from tokend.core.entry import Cancellable, Entry, FetchJob
from tokend.core.errors import SourceError, TokendError, UsageError
from tokend.sources import registry
from tokend.sources.base import BaseSource, FetchRequest

log = logging.getLogger(__name__)

#: A fetch still running this long after its own timeout is presumed wedged.
HUNG_GRACE = 5.0


#: ``scheduler(delay, fn)`` runs ``fn`` after ``delay`` seconds, from any thread.
Scheduler = Callable[[float, Callable[[], None]], Cancellable]


class SharedStore(Protocol):
    """A cross-process cache (daemonless mode): see ``tokend.core.localcache``."""

    def load(self, profile: Profile) -> Credential | None: ...

    def fetch_through(
        self,
        profile: Profile,
        fetch: Callable[[], Credential],
        *,
        usable: Callable[[Credential], bool],
        forced: bool,
    ) -> Credential: ...


SourceFactory = Callable[[Profile, Callable[[], float]], BaseSource]

#: ``on_failure(profile, source, error)``: told of every failed fetch after its
#: waiters were (the daemon's login notification, tokend/daemon/notify.py).
FailureHook = Callable[[Profile, BaseSource, TokendError], None]


def build_source(profile: Profile, clock: Callable[[], float]) -> BaseSource:
    cls = registry.lookup(profile.source)
    if cls is None:  # config validation makes this unreachable short of a vanished plug-in
        raise UsageError(f"unknown source {profile.source!r}", profile=profile.name)
    return cls(profile.name, profile.options, clock=clock)


class CredentialCache:
    """The cache and its fetches; ``Broker`` adds the request path."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        executor: Executor | None = None,
        scheduler: Scheduler | None = None,
        store: SharedStore | None = None,
        rng: random.Random | None = None,
        source_factory: SourceFactory = build_source,
        max_fetch_timeout: float | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        self._config = config
        self._on_failure = on_failure
        # Daemonless callers have their own deadline: the source must give up by
        # then (killing its subprocess) rather than outlive the process.
        self._max_fetch_timeout = max_fetch_timeout
        self._clock = clock
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(8, thread_name_prefix="tokend-fetch")
        self._scheduler = scheduler
        self._store = store
        self._rng = rng or random.Random()
        self._make_source = source_factory
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> Config:
        return self._config

    def profile(self, name: str) -> Profile:
        return self._config.profile(name)

    # -- the cache's side of a request ------------------------------------------------

    def lookup(
        self, name: str, *, min_ttl: float | None = None, force: bool = False
    ) -> Credential | Future[Credential]:
        """A servable credential now, or the future of the fetch that will produce one.

        The non-blocking half of ``request`` (``min_ttl`` already resolved).
        """
        now = self._clock()
        with self._lock:
            entry = self._entry(name)
            if entry.source.fingerprint() != entry.identity:
                # Another identity (credentials file, signed-in account): nothing
                # cached or in flight for the old one may be served from now on.
                log.info("%s: the source's identity changed; dropping its cached credential", name)
                self._drop(name)
                entry = self._entry(name)
            entry.last_used = now
            profile = entry.profile
            ttl = profile.min_ttl if min_ttl is None else min_ttl
            if force:
                if now - entry.last_forced >= profile.refresh_limit:
                    entry.last_forced = now
                    return self._start_fetch(entry, now, forced=True, min_ttl=ttl)
                log.info(
                    "%s: forced refresh rate-limited (one per %s)",
                    name,
                    format_duration(profile.refresh_limit),
                )
            if entry.cred is None and self._store is not None:
                entry.keep(sane(self._store.load(entry.store_key()), now, profile))
            cred = entry.cred
            state = None if cred is None else policy.state(cred, now, ttl)
            if cred is not None and state is not policy.State.EXPIRED:
                entry.hits += 1
                if state is policy.State.STALE and entry.inflight is None and not entry.backing_off(now):
                    self._start_fetch(entry, now, forced=False)
                return cred
            if entry.inflight is None and entry.hold_error is not None and now < entry.hold_until:
                raise entry.hold_error
            if ttl > profile.min_ttl:
                # This caller wants more life than the profile's callers (--min-ttl,
                # a format's floor): upstream may not give that much, so such demands
                # reach it no more often than forced refreshes while the cache is healthy.
                # (A --refresh after such a demand is another matter: a consumer got a 401.)
                healthy = entry.servable(now, profile.min_ttl) is not None
                last_asked = max(entry.last_demand, entry.last_forced)
                if healthy and now - last_asked < profile.refresh_limit:
                    raise self._unmet(entry, now, ttl)
                entry.last_demand = now
            return self._start_fetch(entry, now, forced=False, min_ttl=ttl)

    def _unmet(self, entry: Entry, now: float, ttl: float) -> SourceError:
        cred = entry.cred
        left = None if cred is None else cred.remaining(now)
        has = "no expiry" if left is None else f"{format_duration(left)} left"
        return SourceError(
            f"the cached credential has {has}, not more than the {format_duration(ttl)} this request needs "
            f"(--min-ttl, or the output format's floor); upstream is asked for more at most once per "
            f"{format_duration(entry.profile.refresh_limit)} (refresh_limit)",
            profile=entry.profile.name,
            retryable=False,
        )

    # -- configuration --------------------------------------------------------

    def reconfigure(self, config: Config) -> list[str]:
        """Swap in ``config``; drop cached state of profiles whose settings changed."""
        dropped = []
        with self._lock:
            self._config = config
            for name, entry in list(self._entries.items()):
                new = config.profiles.get(name)
                if new is None or new.fingerprint != entry.profile.fingerprint:
                    self._drop(name)
                    dropped.append(name)
        return dropped

    def forget(self, name: str) -> None:
        """Drop the cached credential of ``name`` (its secret changed under us)."""
        with self._lock:
            if name in self._entries:
                self._drop(name)

    def wake(self) -> list[str]:
        """Catch up after a suspend/resume or a wall-clock jump; the profiles now refreshing.

        Refresh timers count monotonic time (it stands still during suspend) but
        credentials expire by the wall clock: refresh at once every profile in use
        whose credential is no longer fresh or whose refresh was due (a backoff in
        progress is kept unless the credential expired), and re-arm the other
        timers for their wall-clock time.
        """
        now = self._clock()
        started = []
        with self._lock:
            for name, entry in self._entries.items():
                cred, due = entry.cred, entry.next_refresh
                if entry.inflight is not None or cred is None:
                    continue
                st = policy.state(cred, now, entry.profile.min_ttl)
                in_use = now - entry.last_used <= policy.IDLE_STOP
                if in_use and (
                    st is policy.State.EXPIRED
                    or (st is policy.State.STALE and not entry.backing_off(now))
                    or (due is not None and due <= now)
                ):
                    self._start_fetch(entry, now, forced=False)
                    started.append(name)
                elif due is not None:
                    self._schedule(entry, due, now)
        return started

    def close(self) -> None:
        with self._lock:
            sources = [entry.source for entry in self._entries.values()]
            for name in list(self._entries):
                self._drop(name)
        # Abandon fetches in flight (a hung command would otherwise keep the
        # process alive until its timeout, holding the daemon's instance lock).
        for source in sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def status(self) -> list[dict[str, Any]]:
        """Per-profile state for ``tokend status``: never a credential value."""
        now = self._clock()
        rows = []
        with self._lock:
            for name, profile in sorted(self._config.profiles.items()):
                entry = self._entries.get(name)
                if entry is None:
                    rows.append(
                        {"profile": name, "source": profile.source, "state": "idle", "hits": 0, "fetches": 0}
                    )
                else:
                    rows.append(entry.status_row(now))
        return rows

    # -- internals (called with self._lock held) -------------------------------

    def _entry(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            profile = self._config.profile(name)
            source = self._make_source(profile, self._clock)
            entry = Entry(profile=profile, source=source, identity=source.fingerprint())
            self._entries[name] = entry
        return entry

    def _drop(self, name: str) -> None:
        entry = self._entries.pop(name)
        if entry.timer is not None:
            entry.timer.cancel()
        entry.keep(None)

    def _start_fetch(
        self, entry: Entry, now: float, *, forced: bool, min_ttl: float | None = None
    ) -> Future[Credential]:
        inflight = entry.inflight
        if inflight is not None:
            if now - entry.inflight_since <= entry.profile.timeout + HUNG_GRACE:
                return inflight
            log.warning(
                "%s: abandoning a fetch running for %s (source ignored its timeout)",
                entry.profile.name,
                format_duration(now - entry.inflight_since),
            )
        fut: Future[Credential] = Future()
        # Running futures cannot be cancelled: one waiter giving up (a closed
        # connection) must not cancel the fetch the other waiters share.
        fut.set_running_or_notify_cancel()
        entry.inflight, entry.inflight_since = fut, now
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        entry.next_refresh = None
        job = entry.job = FetchJob(entry, fut, forced, min_ttl)
        self._executor.submit(self._run_job, job)
        return fut

    def _schedule(self, entry: Entry, when: float | None, now: float) -> None:
        entry.next_refresh = when
        if when is None or self._scheduler is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = self._scheduler(max(when - now, 0.0), lambda: self._on_timer(entry))

    def _on_timer(self, entry: Entry) -> None:
        now = self._clock()
        with self._lock:
            if self._entries.get(entry.profile.name) is not entry or entry.inflight is not None:
                return
            entry.timer = None
            if now - entry.last_used > policy.IDLE_STOP:
                log.info(
                    "%s: unused for %s, no longer refreshed ahead of time",
                    entry.profile.name,
                    format_duration(now - entry.last_used),
                )
                entry.next_refresh = None
                return
            self._start_fetch(entry, now, forced=False)

    # -- the fetch itself (worker thread) ---------------------------------------

    def _run_job(self, job: FetchJob) -> None:
        if job.claim():  # not already run by a waiting dependency (credential_of)
            self._run_fetch(job.entry, job.fut, job.forced, job.min_ttl)

    def _run_fetch(
        self, entry: Entry, fut: Future[Credential], forced: bool, min_ttl: float | None = None
    ) -> None:
        profile = entry.profile
        # The shared cache's copy must satisfy the caller that started the fetch,
        # whose min_ttl may exceed the profile's (--min-ttl).
        ttl = profile.min_ttl if min_ttl is None else min_ttl
        timeout = profile.timeout
        if self._max_fetch_timeout is not None:
            timeout = min(timeout, self._max_fetch_timeout)
        deadline = time.monotonic() + timeout
        request = FetchRequest(
            profile=profile.name,
            timeout=timeout,
            forced=forced,
            credential_of=lambda other, force=False: self.credential_of(
                other, deadline=deadline, force=force
            ),
        )
        try:
            if self._store is not None:
                cred = self._store.fetch_through(
                    entry.store_key(),
                    lambda: self._fetch_checked(entry, request),
                    usable=lambda c: (
                        sane(c, self._clock(), profile) is not None
                        and policy.state(c, self._clock(), ttl) is not policy.State.EXPIRED
                    ),
                    forced=forced,
                )
            else:
                cred = self._fetch_checked(entry, request)
        except TokendError as e:
            if e.profile is None:
                e.profile = profile.name
            self._failed(entry, fut, e)
        except Exception as e:  # a source bug must not kill the worker or hide the cause
            log.exception("%s: source %r raised", profile.name, profile.source)
            self._failed(entry, fut, SourceError(f"{type(e).__name__}: {e}", profile=profile.name))
        else:
            self._succeeded(entry, fut, cred)

    def _fetch_checked(self, entry: Entry, request: FetchRequest) -> Credential:
        return accepted(entry.source.fetch(request), self._clock(), entry.profile)

    def _settled(self, entry: Entry, fut: Future[Credential]) -> bool:
        """Count a finished fetch (lock held); whether ``entry`` is still the profile's."""
        entry.fetches += 1
        if entry.inflight is fut:
            entry.inflight = None
        return self._entries.get(entry.profile.name) is entry

    def _succeeded(self, entry: Entry, fut: Future[Credential], cred: Credential) -> None:
        now = self._clock()
        with self._lock:
            if self._settled(entry, fut):
                old = entry.cred
                if old is not None and old is not cred and old.fields != cred.fields:
                    entry.rotations += 1
                entry.keep(cred)
                entry.failures, entry.last_error, entry.hold_error = 0, None, None
                entry.last_refresh = now
                self._schedule(entry, policy.next_refresh(cred, now, entry.profile.min_ttl, self._rng), now)
        fut.set_result(cred)

    def _failed(self, entry: Entry, fut: Future[Credential], err: TokendError) -> None:
        now = self._clock()
        with self._lock:
            if self._settled(entry, fut):
                entry.failures += 1
                entry.last_error = err.message
                usable = entry.servable(now, entry.profile.min_ttl) is not None
                retryable = getattr(err, "retryable", False)
                delay = policy.backoff(entry.failures, self._rng)
                if isinstance(err, BadAnswer):
                    # Asking again at once would get the same answer: callers
                    # get this error until the backoff ends.
                    entry.hold_until, entry.hold_error = now + delay, err
                if usable and retryable:
                    log.warning(
                        "%s: refresh failed (%s); serving the cached credential, retry in %s",
                        entry.profile.name,
                        err.message,
                        format_duration(delay),
                    )
                    self._schedule(entry, now + delay, now)
                else:
                    log.warning("%s: fetch failed: %s", entry.profile.name, err.message)
                    self._schedule(entry, None, now)
        fut.set_exception(err)
        if self._on_failure is not None:
            try:
                self._on_failure(entry.profile, entry.source, err)
            except Exception:  # a hook must not break the fetch worker
                log.exception("%s: failure hook raised", entry.profile.name)

    def credential_of(self, name: str, *, deadline: float, force: bool = False) -> Credential:
        """Another profile's credential for a fetch in progress: see ``Broker.credential_of``."""
        raise NotImplementedError
