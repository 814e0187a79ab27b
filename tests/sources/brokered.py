"""Fetches made by hand (``source.fetch(request)``) whose source asks the broker for another profile.

``build`` makes a source the way the broker does and remembers a ``Broker``
over the same config; ``request`` gives a ``FetchRequest`` whose
``credential_of`` asks that broker, as the daemon's fetches do. The brokers
are closed after each test (tests/sources/conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tokend.core.broker import Broker, SourceFactory, build_source
from tokend.core.config import Config
from tokend.core.credential import Credential
from tokend.sources.base import BaseSource, FetchRequest

_BROKERS: dict[int, tuple[BaseSource, Broker]] = {}


def build(
    cfg: Config, name: str, clock: Callable[[], float] = time.time, *, factory: SourceFactory = build_source
) -> BaseSource:
    """``name``'s source; ``factory`` builds the sources of the profiles it asks the broker for."""
    source = build_source(cfg.profile(name), clock)
    _BROKERS[id(source)] = (source, Broker(cfg, clock=clock, source_factory=factory))
    return source


def broker_of(source: BaseSource) -> Broker:
    return _BROKERS[id(source)][1]


def request(source: BaseSource, timeout: float = 10.0, *, forced: bool = False) -> FetchRequest:
    found = _BROKERS.get(id(source))
    if found is None:
        return FetchRequest(profile=source.profile, timeout=timeout, forced=forced)
    broker, deadline = found[1], time.monotonic() + timeout

    def credential_of(other: str, *, force: bool = False) -> Credential:
        return broker.credential_of(other, deadline=deadline, force=force)

    return FetchRequest(profile=source.profile, timeout=timeout, forced=forced, credential_of=credential_of)


def fetch(source: BaseSource, timeout: float = 10.0, *, forced: bool = False) -> Credential:
    return source.fetch(request(source, timeout, forced=forced))


def close_all() -> None:
    while _BROKERS:
        _, (_, broker) = _BROKERS.popitem()
        broker.close()
