"""The broker's per-profile state, and the ``tokend status`` row made from it."""

from __future__ import annotations

import dataclasses
import math
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from tokend.core import policy
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.errors import REDACTOR, TokendError
from tokend.sources.base import BaseSource


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@dataclass
class Entry:
    profile: Profile
    source: BaseSource
    cred: Credential | None = None
    inflight: Future[Credential] | None = None
    inflight_since: float = 0.0
    timer: Cancellable | None = None
    next_refresh: float | None = None
    last_refresh: float | None = None
    last_forced: float = -math.inf  # --refresh reaching upstream
    last_demand: float = -math.inf  # a min_ttl above the profile's reaching upstream
    last_used: float = 0.0
    failures: int = 0
    last_error: str | None = None
    #: After a bad answer (tokend.core.answers.BadAnswer) callers get ``hold_error``
    #: until ``hold_until`` instead of each sending upstream again.
    hold_until: float = -math.inf
    hold_error: TokendError | None = None
    hits: int = 0
    fetches: int = 0
    rotations: int = 0
    identity: str | None = None  # the source's fingerprint() when this entry was made
    job: FetchJob | None = None  # the last fetch submitted

    def keep(self, cred: Credential | None) -> None:
        """Make ``cred`` the cached credential; its values stay redacted while it is cached."""
        old = self.cred
        if old is cred:
            return
        if cred is not None:
            REDACTOR.add(cred.secret_values())
        if old is not None:
            REDACTOR.discard(old.secret_values())
        self.cred = cred

    def servable(self, now: float, min_ttl: float) -> Credential | None:
        cred = self.cred
        if cred is None or policy.state(cred, now, min_ttl) is policy.State.EXPIRED:
            return None
        return cred

    def backing_off(self, now: float) -> bool:
        """A failed refresh waits for its backoff: callers must not bypass it."""
        return self.failures > 0 and self.next_refresh is not None and now < self.next_refresh

    def store_key(self) -> Profile:
        """The profile as the shared cache keys it: with the source's identity folded
        in, so a process never loads a credential cached for another identity."""
        if self.identity is None:
            return self.profile
        options = MappingProxyType({**self.profile.options, "\0identity": self.identity})
        return dataclasses.replace(self.profile, options=options)

    def status_row(self, now: float) -> dict[str, Any]:
        """This profile's row of ``tokend status``: never a credential value."""
        cred = self.cred
        if cred is None:
            state = "error" if self.last_error else "empty"
        else:
            state = policy.state(cred, now, self.profile.min_ttl).value
        return {
            "profile": self.profile.name,
            "source": self.profile.source,
            "state": state,
            "refreshing": self.inflight is not None,
            "expires_in": None if cred is None else cred.remaining(now),
            "expires_at": None if cred is None else cred.expires_iso(),
            "last_refresh": self.last_refresh,
            "next_refresh": self.next_refresh,
            "hits": self.hits,
            "fetches": self.fetches,
            "failures": self.failures,
            "rotations": self.rotations,
            "last_error": self.last_error,
        }


class FetchJob:
    """One submitted fetch, run exactly once: by a pool thread, or by a waiter that got to it first."""

    def __init__(self, entry: Entry, fut: Future[Credential], forced: bool, min_ttl: float | None) -> None:
        self.entry, self.fut, self.forced, self.min_ttl = entry, fut, forced, min_ttl
        self._claimed = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True
