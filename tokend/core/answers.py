"""What the broker accepts from a source and what a request may ask: finite, bounded, meetable.

An upstream answer whose expiry is NaN, infinite, absurdly far or already
past, or whose life is below the profile's ``min_ttl``, is a bad answer: one
line in ``tokend status`` and a backoff, never a timer fed with NaN nor a
refetch per caller. A request's ``min_ttl`` is the caller's, else the
profile's, raised to the output format's floor, and bounded like every other
duration (``tokend.core.durations.MAX_DURATION``).
"""

from __future__ import annotations

import dataclasses
import math

from tokend import formats
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.durations import MAX_DURATION, format_duration
from tokend.core.errors import REDACTOR, SourceError, UsageError

#: An expiry further ahead than this is a broken answer (seconds).
MAX_EXPIRY = 10 * 366 * 86400.0


class BadAnswer(SourceError):
    """Upstream answered with a credential no caller can be served: backed off, not refetched per call."""

    code = "bad-answer"


def effective_min_ttl(profile: Profile, fmt: str, requested: float | None) -> float:
    """The least life a request needs: the caller's or the profile's, raised to ``fmt``'s floor."""
    formats.check(fmt)
    if requested is not None and not (math.isfinite(requested) and 0 <= requested <= MAX_DURATION):
        raise UsageError(
            f"--min-ttl must be between 0s and {format_duration(MAX_DURATION)}", profile=profile.name
        )
    ttl = formats.min_ttl(fmt, requested, profile.min_ttl)
    return profile.min_ttl if ttl is None else ttl


def _finite(value: float | None) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


def check_answer(cred: Credential, now: float, profile: Profile) -> None:
    """Raise ``BadAnswer`` unless ``cred`` is a credential the broker can cache and serve."""
    if not (_finite(cred.expires_at) and _finite(cred.refresh_at) and _finite(cred.issued_at)):
        raise BadAnswer("upstream answered with an expiry that is not a finite time", profile=profile.name)
    if cred.expires_at is None:
        return
    left = cred.expires_at - now
    if left > MAX_EXPIRY:
        raise BadAnswer(
            f"upstream answered with an expiry {left:.3g}s ahead, beyond any sane credential life",
            profile=profile.name,
        )
    if left <= 0:
        raise BadAnswer(
            f"source returned a credential that expired at {cred.expires_iso()}", profile=profile.name
        )
    if left <= profile.min_ttl:
        raise BadAnswer(
            f"source issued a credential with {format_duration(left)} left, not more than the "
            f"{format_duration(profile.min_ttl)} this request needs (the profile's min_ttl: lower it)",
            profile=profile.name,
        )


def sane(cred: Credential | None, now: float, profile: Profile) -> Credential | None:
    """``cred`` if its times pass ``check_answer`` (the lifetime floor aside), else None (a damaged file)."""
    if cred is None or not (
        _finite(cred.expires_at) and _finite(cred.refresh_at) and _finite(cred.issued_at)
    ):
        return None
    if cred.expires_at is not None and cred.expires_at - now > MAX_EXPIRY:
        return None
    return cred


def accepted(cred: Credential, now: float, profile: Profile) -> Credential:
    """``cred`` as the cache keeps it (``issued_at`` filled in), or ``BadAnswer``."""
    try:
        check_answer(cred, now, profile)
    except BadAnswer:
        # Never cached, but seen: its values stay redacted for good.
        REDACTOR.add(cred.secret_values())
        raise
    if cred.issued_at:
        return cred
    # Sources may leave issued_at unset; the life fraction needs it.
    return dataclasses.replace(cred, issued_at=now)
