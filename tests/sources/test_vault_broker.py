"""Vault profiles through the broker (fake clock): rotation after ``ttl``, lease renewal refused,
Vault failing or hanging while a cached secret is still valid."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FakeClock
from tests.fakes.vault import DynamicRole, FakeVault, fake_vault
from tokend.core import config
from tokend.core.broker import Broker

VAULT_VARS = ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT")


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeVault]:
    for var in VAULT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield from fake_vault()


def make_broker(fake: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Broker:
    monkeypatch.setenv("TD_VAULT_TOKEN", fake.token())
    text = f"""
[profiles.kv]
source = "vault"
address = "{fake.url}"
token = "env:TD_VAULT_TOKEN"
mount = "secret"
path = "openai"
json_key = "api_key"
ttl = "10m"
timeout = "1s"

[profiles.db]
source = "vault"
address = "{fake.url}"
token = "env:TD_VAULT_TOKEN"
path = "database/creds/app"
timeout = "1s"
"""
    return Broker(config.parse(text, None), clock=clock)


def settle(broker: Broker, name: str) -> dict[str, object]:
    """The profile's status once its background refresh is over."""
    deadline = time.monotonic() + 10
    while True:
        (row,) = [r for r in broker.status() if r["profile"] == name]
        if not row.get("refreshing"):
            return row
        assert time.monotonic() < deadline, "the background refresh never ended"
        time.sleep(0.02)


def advance(clock: FakeClock, fake: FakeVault, seconds: float) -> None:
    clock.advance(seconds)
    fake.advance(seconds)


def test_rotated_secret_is_picked_up_after_ttl(
    vault: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.put_kv2("openai", {"api_key": "sk-old-000001"})
    broker = make_broker(vault, clock, monkeypatch)
    try:
        assert broker.get("kv").primary == "sk-old-000001"
        vault.put_kv2("openai", {"api_key": "sk-new-000002"})  # rotated upstream
        advance(clock, vault, 300)
        assert broker.get("kv").primary == "sk-old-000001"  # within ttl: no upstream call
        advance(clock, vault, 301)
        assert broker.get("kv").primary == "sk-old-000001"  # stale: served while one refresh runs
        row = settle(broker, "kv")
        assert broker.get("kv").primary == "sk-new-000002"
        assert row["rotations"] == 1 and row["fetches"] == 2
    finally:
        broker.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault", ["5xx", "hang"])
def test_cached_secret_served_while_vault_is_down(
    vault: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    vault.put_kv2("openai", {"api_key": "sk-cached-0001"})
    broker = make_broker(vault, clock, monkeypatch)
    try:
        assert broker.get("kv").primary == "sk-cached-0001"
        if fault == "5xx":
            vault.fail("secret/", 503, "Vault is sealed", times=100)
        else:
            vault.hang("secret/")
        advance(clock, vault, 700)
        assert broker.get("kv").primary == "sk-cached-0001"
        row = settle(broker, "kv")
        assert row["state"] == "stale" and row["failures"] == 1
        assert (
            "sealed" in str(row["last_error"])
            if fault == "5xx"
            else "did not answer" in str(row["last_error"])
        )
        assert broker.get("kv").primary == "sk-cached-0001"  # still served, during the backoff
    finally:
        vault.unhang()
        broker.close()


def test_lease_renewal_failure_reads_new_credentials(
    vault: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.db_roles["app"] = DynamicRole(ttl=3600)
    broker = make_broker(vault, clock, monkeypatch)
    try:
        first = broker.get("db")
        assert first.kind == "basic"
        advance(clock, vault, 2500)  # due for renewal
        vault.refuse_renewals = True
        assert broker.get("db").fields == first.fields  # still valid: served while the refresh runs
        row = settle(broker, "db")
        second = broker.get("db")
        assert second.fields["username"] == vault.issued[1]["username"]
        assert row["rotations"] == 1 and row["last_error"] is None
        assert len(vault.calls("sys/leases/renew")) == 1
    finally:
        broker.close()


def test_renewed_lease_is_not_a_rotation(
    vault: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.db_roles["app"] = DynamicRole(ttl=3600, max_ttl=24 * 3600)
    broker = make_broker(vault, clock, monkeypatch)
    try:
        first = broker.get("db")
        advance(clock, vault, 2500)
        broker.get("db")
        row = settle(broker, "db")
        cred = broker.get("db")
        assert cred.fields == first.fields and cred.expires_at == clock() + 3600
        assert row["rotations"] == 0 and row["fetches"] == 2 and len(vault.issued) == 1
    finally:
        broker.close()


def test_expired_lease_with_vault_down_is_not_served(
    vault: FakeVault, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokend.core.errors import SourceError

    vault.db_roles["app"] = DynamicRole(ttl=3600)
    broker = make_broker(vault, clock, monkeypatch)
    try:
        broker.get("db")
        vault.fail("", 503, "Vault is sealed", times=100)
        advance(clock, vault, 3400)  # less than min_ttl (5 min) left: never handed out
        with pytest.raises(SourceError, match="sealed"):
            broker.get("db")
    finally:
        broker.close()
