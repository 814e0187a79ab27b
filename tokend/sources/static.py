"""Shared by sources of static secrets: the ``ttl`` re-read interval."""

from __future__ import annotations

from tokend.core import policy
from tokend.core.credential import Credential
from tokend.sources.base import Option

TTL_OPTION = Option(
    "duration", default=policy.STATIC_TTL, help="re-read interval for a secret that does not expire"
)


def static_secret(value: str, *, now: float, ttl: float, source: str) -> Credential:
    """A secret with no expiry, re-read in the background every ``ttl``."""
    return Credential.secret(value, refresh_at=now + ttl, issued_at=now, source=source)
