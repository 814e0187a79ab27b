"""The broker's identity hook: a credential fetched for one identity is never served for another.

``BaseSource.fingerprint()`` names whose credential a fetch would return; the
broker compares it on every lookup and drops what it cached (or has in
flight) under another fingerprint, in the daemon and in daemonless mode alike.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from tests.conftest import FakeClock
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.config import Config, Profile
from tokend.core.credential import Credential
from tokend.core.localcache import LocalCache
from tokend.sources.base import BaseSource, FetchRequest

CONFIG = """\
[profiles.p]
source = "demo"
"""


class Account:
    """Who is signed in right now (what a credentials file on disk would say)."""

    def __init__(self, name: str) -> None:
        self.name = name


class IdentitySource(BaseSource):
    """Hands out ``<account>-<n>`` tokens; its fingerprint is the current account."""

    name = "fake"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, clock: Callable[[], float], account: Account, *, stable: bool = False) -> None:
        super().__init__("p", {}, clock=clock)
        self.account = account
        self.stable = stable  # True: behave like a source without the hook
        self.fetched: list[str] = []
        self.gate: threading.Event | None = None
        self.fingerprints = 0

    def fingerprint(self) -> str | None:
        self.fingerprints += 1
        return None if self.stable else self.account.name

    def fetch(self, request: FetchRequest) -> Credential:
        who = self.account.name  # read when the fetch starts, as a file would be
        if self.gate is not None:
            assert self.gate.wait(10)
        token = f"{who}-{len(self.fetched) + 1}"
        self.fetched.append(token)
        now = self.clock()
        return Credential.bearer(token, expires_at=now + 3600, issued_at=now, source="fake")


@pytest.fixture
def cfg() -> Config:
    return config.parse(textwrap.dedent(CONFIG), None)


@pytest.fixture
def account() -> Account:
    return Account("alice")


@pytest.fixture
def make_broker(cfg: Config, clock: FakeClock, account: Account) -> Iterator[Callable[..., Broker]]:
    brokers: list[Broker] = []

    def make(
        *, stable: bool = False, store: LocalCache | None = None, gate: threading.Event | None = None
    ) -> Broker:
        sources: list[IdentitySource] = []

        def factory(profile: Profile, clk: Callable[[], float]) -> BaseSource:
            src = IdentitySource(clk, account, stable=stable)
            src.gate = gate
            sources.append(src)
            return src

        broker = Broker(cfg, clock=clock, source_factory=factory, store=store)
        broker.sources = sources  # type: ignore[attr-defined]
        brokers.append(broker)
        return broker

    yield make
    for b in brokers:
        b.close()


def token(cred: Credential) -> str:
    return cred.fields["token"]


def test_same_identity_serves_the_cached_credential(make_broker: Callable[..., Broker]) -> None:
    broker = make_broker()
    first = broker.get("p")
    assert token(broker.get("p")) == token(first) == "alice-1"
    assert sum(len(s.fetched) for s in broker.sources) == 1  # type: ignore[attr-defined]


def test_a_new_identity_drops_the_cached_credential_and_refetches(
    make_broker: Callable[..., Broker], account: Account
) -> None:
    broker = make_broker()
    assert token(broker.get("p")) == "alice-1"
    account.name = "bob"
    cred = broker.get("p")
    assert token(cred).startswith("bob-")
    # and it stays bob's from then on
    assert token(broker.get("p")) == token(cred)
    assert broker.status()[0]["fetches"] == 1  # the entry was rebuilt for bob


def test_a_fetch_in_flight_for_the_old_identity_never_lands_in_the_cache(
    make_broker: Callable[..., Broker], account: Account
) -> None:
    gate = threading.Event()
    broker = make_broker(gate=gate)
    # alice's first fetch is in flight when the identity changes
    old = broker.lookup("p")
    assert not isinstance(old, Credential)
    account.name = "bob"
    new = broker.lookup("p")
    assert not isinstance(new, Credential) and new is not old
    gate.set()
    assert token(old.result(5)).startswith("alice-")  # the caller who asked before the switch
    assert token(new.result(5)).startswith("bob-")
    for _ in range(3):
        served = broker.get("p")
        assert token(served).startswith("bob-"), "served the previous identity's token"


def test_sources_without_the_hook_are_unaffected(
    make_broker: Callable[..., Broker], account: Account
) -> None:
    broker = make_broker(stable=True)
    first = broker.get("p")
    account.name = "bob"
    assert broker.get("p") is first


def test_the_hook_is_consulted_on_every_lookup(make_broker: Callable[..., Broker]) -> None:
    broker = make_broker()
    broker.get("p")
    before = broker.sources[0].fingerprints  # type: ignore[attr-defined]
    for _ in range(5):
        broker.lookup("p")
    assert broker.sources[0].fingerprints - before == 5  # type: ignore[attr-defined]


def test_daemonless_processes_never_load_a_credential_cached_for_another_identity(
    make_broker: Callable[..., Broker], account: Account, short_tmp: str, clock: FakeClock
) -> None:
    # Each Broker stands for one `tokend get --no-daemon` process sharing the cache.
    cache = LocalCache(f"{short_tmp}/cache", clock=clock)
    assert token(make_broker(store=cache).get("p")) == "alice-1"
    assert token(make_broker(store=cache).get("p")) == "alice-1"  # shared: no second fetch
    account.name = "bob"
    assert token(make_broker(store=cache).get("p")).startswith("bob-")
    account.name = "alice"
    # back to alice: her credential (still valid, still hers) may be used again
    assert token(make_broker(store=cache).get("p")) == "alice-1"
