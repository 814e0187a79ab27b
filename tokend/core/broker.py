"""The credential cache shared by the daemon and daemonless mode, and its one request path.

Per profile: one upstream fetch at a time (single flight), a background
refresh before the credential goes stale, the old credential served while a
failing refresh backs off (only while it has more than ``min_ttl`` left), a
wall-clock check on every request and a rate limit on forced refreshes and on
demands the source cannot meet.

``request`` is the one place a caller's request is decided: it resolves the
effective ``min_ttl``, serves the cache or waits for the single fetch within
its deadline, and chooses between the new credential, the still-valid old one
and the error. It returns a credential at once when the cache serves it, else
an awaitable (the daemon awaits it on its event loop; ``get`` runs it for
callers without one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import Future

from tokend.core.answers import effective_min_ttl
from tokend.core.cache import (
    HUNG_GRACE,
    CredentialCache,
    FailureHook,
    Scheduler,
    SharedStore,
    SourceFactory,
    build_source,
)
from tokend.core.credential import Credential
from tokend.core.durations import format_duration
from tokend.core.entry import Cancellable
from tokend.core.errors import SourceError, SourceTimeout, TokendError
from tokend.sources.base import BaseSource

log = logging.getLogger(__name__)

__all__ = [
    "HUNG_GRACE",
    "Broker",
    "Cancellable",
    "FailureHook",
    "Scheduler",
    "SharedStore",
    "SourceFactory",
    "build_source",
]


class Broker(CredentialCache):
    """The cache with the one request path every caller, daemon or daemonless, goes through."""

    # -- the request path ---------------------------------------------------------

    def request(
        self,
        name: str,
        *,
        fmt: str = "raw",
        min_ttl: float | None = None,
        force: bool = False,
        timeout: float | None = None,
    ) -> Credential | Awaitable[Credential]:
        """The credential for one caller: at once from the cache, or an awaitable of the fetch's outcome.

        ``min_ttl`` is the caller's (None: the profile's), raised to ``fmt``'s
        floor; ``force`` asks upstream for a new credential (rate-limited);
        ``timeout`` bounds the wait (default: the profile's timeout plus a grace).
        """
        profile = self.profile(name)
        ttl = effective_min_ttl(profile, fmt, min_ttl)
        result = self.lookup(name, min_ttl=ttl, force=force)
        if isinstance(result, Credential):
            return result
        wait = profile.timeout + HUNG_GRACE if timeout is None else timeout
        return self._settle(name, result, ttl, wait)

    def get(
        self,
        name: str,
        *,
        fmt: str = "raw",
        min_ttl: float | None = None,
        force: bool = False,
        timeout: float | None = None,
    ) -> Credential:
        """``request`` for callers without an event loop (daemonless mode, sources' dependencies)."""
        result = self.request(name, fmt=fmt, min_ttl=min_ttl, force=force, timeout=timeout)
        if isinstance(result, Credential):
            return result
        return asyncio.run(_awaited(result))

    async def _settle(self, name: str, fut: Future[Credential], ttl: float, wait: float) -> Credential:
        """The new credential if it serves ``ttl``, else the still-valid old one, else the error."""
        try:
            try:
                cred = await asyncio.wait_for(asyncio.wrap_future(fut), wait)
            except asyncio.TimeoutError:
                raise SourceTimeout(f"no credential within {wait:g}s", profile=name) from None
            self.check(name, cred, ttl)
        except TokendError:
            fallback = self.servable(name, ttl)
            if fallback is None:
                raise
            return fallback
        return cred

    def check(self, name: str, cred: Credential, min_ttl: float | None) -> None:
        """Raise unless a freshly fetched ``cred`` satisfies the caller's ``min_ttl``."""
        profile = self.profile(name)
        ttl = profile.min_ttl if min_ttl is None else min_ttl
        left = cred.remaining(self._clock())
        if left is not None and left <= ttl:
            raise SourceError(
                f"source {profile.source!r} returned a credential with {format_duration(left)} "
                f"left, not more than the {format_duration(ttl)} this request needs "
                "(min_ttl, or the output format's floor)",
                profile=name,
                retryable=False,
            )

    def servable(self, name: str, min_ttl: float | None) -> Credential | None:
        """The cached credential if it still serves a caller needing ``min_ttl``.

        Used when a fetch fails for a caller who asked for it anyway (--refresh,
        or a race with another refresh): the old credential is still served
        while it has more than min_ttl left.
        """
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return None
            return entry.servable(self._clock(), entry.profile.min_ttl if min_ttl is None else min_ttl)

    # -- ending what sources hold upstream (tokend logout, revoke_on_stop) ------------

    def revoke(self, name: str, timeout: float) -> list[str]:
        """``tokend logout``: drop ``name``'s cached credential; its source revokes what it holds.

        What was revoked (empty when nothing was held); the source's error when it failed.
        """
        self.profile(name)  # UnknownProfile before anything else
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return []
            self._drop(name)
        return entry.source.revoke(timeout)

    def revoke_for_stop(self, timeout: float) -> list[str]:
        """At shutdown: revoke for each profile whose source asks for it (``revoke_on_stop``).

        All at once, each in a daemon thread, the whole given ``timeout`` seconds: a
        hanging upstream must neither delay the stop further nor keep the process
        alive. Lines saying what each profile revoked (or why not), for the log and
        ``tokend stop``.
        """
        with self._lock:
            chosen = {n: e.source for n, e in self._entries.items() if e.source.revokes_on_stop()}
            for name in chosen:
                self._drop(name)
        if not chosen:
            return []
        said: dict[str, str] = {}

        def one(name: str, source: BaseSource) -> None:
            try:
                done = source.revoke(timeout)
                said[name] = "revoked " + ", ".join(done) if done else "nothing held to revoke"
            except TokendError as e:
                said[name] = e.message
            except Exception as e:  # a source bug must not stop the others' revocation
                log.exception("%s: revoking at stop failed", name)
                said[name] = f"{type(e).__name__}: {e}"

        threads = [
            threading.Thread(target=one, args=item, name=f"tokend-revoke-{item[0]}", daemon=True)
            for item in chosen.items()
        ]
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        lines = []
        for name in sorted(chosen):
            line = f"{name}: {said.get(name) or f'no answer from upstream within {timeout:g}s; not revoked'}"
            log.info("at stop: %s", line)
            lines.append(line)
        return lines

    # -- credentials a fetch needs from another profile --------------------------

    def credential_of(self, name: str, *, deadline: float, force: bool = False) -> Credential:
        """``name``'s credential for a fetch in progress (a secrets API's access token).

        Served like any request for ``name`` (cached, single flight, backed off,
        counted in ``status``), waiting at most until ``deadline`` (time.monotonic()).
        ``force`` is a forced refresh under ``name``'s refresh_limit.

        The requesting fetch holds a pool thread while it waits; when every
        thread does, the fetch they wait for would sit in the pool's queue behind
        them. So a waiter runs a fetch nobody has started yet itself.
        """
        pending = self.lookup(name, force=force)
        if isinstance(pending, Credential):
            return pending
        with self._lock:
            entry = self._entries.get(name)
            job = None if entry is None else entry.job
        if job is not None and job.fut is pending and job.claim():
            self._run_fetch(job.entry, job.fut, job.forced, job.min_ttl)  # settles pending, never raises
        if pending.done() and pending.exception() is not None:
            # Asking again would start another fetch right after a failure: no backoff.
            fallback = self.servable(name, None)
            if fallback is None:
                raise pending.exception()  # type: ignore[misc]
            return fallback
        return self.get(name, timeout=max(deadline - time.monotonic(), 0.0))


async def _awaited(pending: Awaitable[Credential]) -> Credential:
    return await pending
