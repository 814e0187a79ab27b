"""Every refresh window in one place: staleness, refresh times, jitter, backoff.

The names follow google-auth's TokenState: a FRESH credential is served as is,
a STALE one is served while one background refresh runs, an EXPIRED one (less
than ``min_ttl`` of life left) is never served.
"""

from __future__ import annotations

import enum
import random

from tokend.core.credential import Credential

DEFAULT_MIN_TTL = 300.0  # never hand out less than 5 minutes of life
DEFAULT_FETCH_TIMEOUT = 30.0  # bound on one upstream fetch
FORCED_REFRESH_INTERVAL = 30.0  # --refresh: at most one upstream call per profile per 30 s
STATIC_TTL = 3600.0  # re-read interval for secrets that do not expire

REFRESH_FRACTION = 2 / 3  # refresh after ~2/3 of the life ...
REFRESH_MARGIN = 600.0  # ... or 10 minutes before expiry, whichever is earlier
MIN_FRACTION = 0.5  # but never before half the life is used (short-lived tokens)
JITTER_FRACTION = 0.05  # spread refreshes of many daemons over 5% of the life
MIN_REFRESH_DELAY = 1.0

BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0

#: Profiles nobody asked for in this long stop being refreshed proactively.
IDLE_STOP = 12 * 3600.0


class State(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"


def refresh_due(cred: Credential) -> float | None:
    """When ``cred`` should be replaced, without jitter (None: never by time)."""
    if cred.refresh_at is not None:
        return cred.refresh_at
    if cred.expires_at is None:
        return None
    life = max(cred.expires_at - cred.issued_at, 0.0)
    by_fraction = cred.issued_at + life * REFRESH_FRACTION
    by_margin = cred.expires_at - REFRESH_MARGIN
    return max(min(by_fraction, by_margin), cred.issued_at + life * MIN_FRACTION)


def state(cred: Credential, now: float, min_ttl: float = DEFAULT_MIN_TTL) -> State:
    """Classify ``cred`` at wall-clock time ``now`` for a caller needing ``min_ttl``."""
    if cred.expires_at is not None and cred.expires_at - now <= min_ttl:
        return State.EXPIRED
    due = refresh_due(cred)
    if due is not None and now >= due:
        return State.STALE
    return State.FRESH


def next_refresh(cred: Credential, now: float, min_ttl: float, rng: random.Random) -> float | None:
    """The jittered time for the background refresh of ``cred`` (None: never)."""
    due = refresh_due(cred)
    if due is None:
        return None
    if cred.expires_at is not None and cred.expires_at - min_ttl <= now + MIN_REFRESH_DELAY:
        # Born with less life than min_ttl: refreshing would loop on upstream;
        # the next request fetches (and is told to lower min_ttl).
        return None
    if cred.expires_at is not None:
        life = max(cred.expires_at - cred.issued_at, 0.0)
        due -= rng.uniform(0.0, life * JITTER_FRACTION)
        # Refresh before callers with the profile's min_ttl would have to wait.
        due = min(due, cred.expires_at - min_ttl - MIN_REFRESH_DELAY)
    return max(due, now + MIN_REFRESH_DELAY)


def backoff(failures: int, rng: random.Random) -> float:
    """Delay before retry number ``failures`` (1-based): exponential, jittered to [d/2, d]."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(failures - 1, 0))
    return rng.uniform(delay / 2, delay)
