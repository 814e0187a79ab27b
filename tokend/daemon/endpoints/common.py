"""What the per-cloud endpoints share: the broker call, token checks, error statuses, derived profiles."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tokend.core.broker import Broker
from tokend.core.credential import Credential
from tokend.core.errors import SourceError, TokendError
from tokend.daemon.endpoints.http import Request, Response

#: At most this many derived profiles (other scopes / resources) per endpoint:
#: a client cannot make tokend fetch for arbitrarily many.
MAX_VARIANTS = 16


async def credential(broker: Broker, name: str) -> Credential:
    """The profile's credential through the broker's one request path (cache, single flight)."""
    result = broker.request(name)
    return result if isinstance(result, Credential) else await result


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a request's token with the endpoint's."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def refusal(
    request: Request, *, path: str, header: str, token: str, what: str, refuse: Callable[[int, str], Response]
) -> Response | None:
    """The answer to a request for another path or method or without the endpoint's token; None: serve it."""
    if request.path != path:
        return refuse(404, f"no such path: {request.path}")
    if request.method != "GET":
        return refuse(405, "only GET")
    given = request.headers.get(header)
    if given is None:
        return refuse(401, f"missing {what}")
    if not token_matches(given, token):
        return refuse(403, f"wrong {what}")
    return None


def error_status(err: TokendError) -> int:
    """503 (the SDKs retry it) when asking again may succeed, else 500."""
    return 503 if isinstance(err, SourceError) and err.retryable else 500


class Variants:
    """Profiles derived from one profile with other options (scopes, resource).

    They are added to the broker's configuration, so their credentials go
    through the same request path and cache as every other profile's.
    """

    def __init__(self, broker: Broker, base: str, limit: int = MAX_VARIANTS) -> None:
        self._broker = broker
        self._base = base
        self._limit = limit
        self._names: dict[str, str] = {}

    def name(self, overrides: Mapping[str, Any]) -> str | None:
        """The derived profile's name; None once ``limit`` variants exist."""
        key = json.dumps(dict(overrides), sort_keys=True, default=str)
        found = self._names.get(key)
        if found is not None:
            return found
        if len(self._names) >= self._limit:
            return None
        base = self._broker.profile(self._base)
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        derived = dataclasses.replace(
            base, name=f"{base.name}@{digest}", options=MappingProxyType({**base.options, **overrides})
        )
        config = self._broker.config
        profiles = MappingProxyType({**config.profiles, derived.name: derived})
        self._broker.reconfigure(dataclasses.replace(config, profiles=profiles))
        self._names[key] = derived.name
        return derived.name

    async def credential(
        self, overrides: Mapping[str, Any] | None, *, what: str, refuse: Callable[[int, str], Response]
    ) -> Credential | Response:
        """The base profile's credential, or its variant's with ``overrides``; else the refusal to send."""
        name = self._base
        if overrides is not None:
            variant = self.name(overrides)
            if variant is None:
                return refuse(400, f"tokend: too many distinct {what} asked of this endpoint")
            name = variant
        try:
            return await credential(self._broker, name)
        except TokendError as e:
            return refuse(error_status(e), e.line().replace(name, self._base))
