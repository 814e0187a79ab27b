"""The broker's side of revocation: ``tokend logout`` (one profile) and ``revoke_on_stop`` (at a stop)."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.errors import SourceError, UnknownProfile
from tokend.sources.base import BaseSource, FetchRequest

CONFIG = """\
[profiles.keep]
source = "demo"

[profiles.laptop]
source = "demo"

[profiles.hangs]
source = "demo"

[profiles.fails]
source = "demo"
"""


class Holding(BaseSource):
    """Holds one lease per fetch; ``revoke`` says so, hangs or fails as the test set it up."""

    name = "holding"
    options: ClassVar[dict[str, Any]] = {}
    supports_revoke = True

    def __init__(self, profile: str, clock: Callable[[], float], release: threading.Event) -> None:
        super().__init__(profile, {}, clock=clock)
        self.leases: list[str] = []
        self.revoked: list[str] = []
        self.release = release

    def fetch(self, request: FetchRequest) -> Credential:
        self.leases.append(f"{self.profile}/lease-{len(self.leases) + 1}")
        return Credential.secret("value", refresh_at=self.clock() + 3600)

    def revokes_on_stop(self) -> bool:
        return self.profile != "keep"

    def revoke(self, timeout: float) -> list[str]:
        if self.profile == "hangs":
            self.release.wait(60)  # an upstream that never answers within the stop
        if self.profile == "fails":
            raise SourceError("permission denied on sys/leases/revoke", retryable=False)
        self.revoked, self.leases = self.leases, []
        return [f"lease {lease}" for lease in self.revoked]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let the abandoned thread end


@pytest.fixture
def made() -> dict[str, list[Holding]]:
    return {}


@pytest.fixture
def broker(made: dict[str, list[Holding]], release: threading.Event) -> Iterator[Broker]:
    def factory(profile: Profile, clock: Callable[[], float]) -> BaseSource:
        src = Holding(profile.name, clock, release)
        made.setdefault(profile.name, []).append(src)
        return src

    b = Broker(config.parse(textwrap.dedent(CONFIG), None), source_factory=factory)
    yield b
    b.close()


def test_logout_revokes_and_drops_the_cache(broker: Broker, made: dict[str, list[Holding]]) -> None:
    broker.get("laptop")
    assert broker.revoke("laptop", 5.0) == ["lease laptop/lease-1"]
    assert made["laptop"][0].revoked == ["laptop/lease-1"]
    # The cache went with it: the next caller gets a new instance and a new fetch.
    broker.get("laptop")
    assert len(made["laptop"]) == 2 and made["laptop"][1].leases == ["laptop/lease-1"]
    # A profile nobody asked for holds nothing (no source is built for it); an unknown one is an error.
    assert broker.revoke("keep", 5.0) == [] and "keep" not in made
    with pytest.raises(UnknownProfile):
        broker.revoke("nope", 5.0)


def test_stop_revokes_only_where_asked_and_within_its_budget(
    broker: Broker, made: dict[str, list[Holding]]
) -> None:
    for name in ("keep", "laptop", "hangs", "fails"):
        broker.get(name)
    started = time.monotonic()
    lines = broker.revoke_for_stop(0.5)
    # Wide margin on a loaded machine; what matters is that the hanging one is not waited for.
    assert time.monotonic() - started < 10
    assert lines == [
        "fails: permission denied on sys/leases/revoke",
        "hangs: no answer from upstream within 0.5s; not revoked",
        "laptop: revoked lease laptop/lease-1",
    ]
    assert made["keep"][0].leases == ["keep/lease-1"] and made["keep"][0].revoked == []
    # Done once: a second pass (SIGTERM after `tokend stop`) finds nothing left to revoke.
    assert broker.revoke_for_stop(0.5) == []
