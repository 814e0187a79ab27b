"""``azure-keyvault`` with real azure-identity and azure-core against FakeEntra and a Key Vault fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.azure_env import AzureEnv, azure_env, entra, test_ca
from tests.fakes.entra import FakeEntra, TestCA
from tests.fakes.keyvault import FakeKeyVault, fake_keyvault
from tests.sources import brokered
from tests.sources.test_contract import SourceContract, toml_value
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, SourceError, SourceTimeout
from tokend.sources.azure.keyvault import scope_for
from tokend.sources.base import BaseSource

__all__ = ["azure_env", "entra", "test_ca"]  # fixtures, used by name

APP_SECRET = "kv-app-secret-Q7~never-shown"
VAULT_SCOPE = "https://vault.azure.net/.default"


@pytest.fixture
def kv(
    azure_env: AzureEnv, test_ca: TestCA, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKeyVault]:
    entra.register("app-1", secret=APP_SECRET)
    monkeypatch.setenv("TD_AZ_SECRET", APP_SECRET)
    yield from fake_keyvault(test_ca, entra)


def azure_profile(entra: FakeEntra, **extra: Any) -> str:
    options = {
        "credential": "client-secret",
        "tenant_id": entra.tenant,
        "client_id": "app-1",
        "client_secret_env": "TD_AZ_SECRET",
        "authority": entra.url,
        "disable_instance_discovery": True,
        **extra,
    }
    return '[profiles.az]\nsource = "azure"\n' + "".join(
        f"{k} = {toml_value(v)}\n" for k, v in options.items()
    )


def secret_config(
    kv: FakeKeyVault, entra: FakeEntra, profile_name: str = "s", **options: Any
) -> config.Config:
    options.setdefault("vault_url", kv.url)
    options.setdefault("via", "az")
    body = "".join(f"{k} = {toml_value(v)}\n" for k, v in options.items())
    return config.parse(
        azure_profile(entra) + f'[profiles.{profile_name}]\nsource = "azure-keyvault"\n' + body, None
    )


def source(kv: FakeKeyVault, entra: FakeEntra, clock: Any = time.time, **options: Any) -> BaseSource:
    return brokered.build(secret_config(kv, entra, **options), "s", clock)


def fetch(src: BaseSource, timeout: float = 10.0) -> Credential:
    return brokered.fetch(src, timeout)


class TestKeyVaultContract(SourceContract):
    source_name = "azure-keyvault"

    def build(self, options: Any, clock: Any) -> BaseSource:
        profile = config.parse(
            self._az
            + '[profiles.contract]\nsource = "azure-keyvault"\n'
            + "".join(f"{k} = {toml_value(v)}\n" for k, v in options.items()),
            None,
        )
        return brokered.build(profile, "contract", clock)

    @pytest.fixture
    def options(self, kv: FakeKeyVault, entra: FakeEntra) -> dict[str, Any]:
        self._az = azure_profile(entra)
        kv.set_secret("contract", "sk-contract-keyvault")
        return {"vault_url": kv.url, "name": "contract", "via": "az"}

    @pytest.fixture
    def unavailable_options(self, kv: FakeKeyVault, entra: FakeEntra) -> dict[str, Any]:
        self._az = '[profiles.az]\nsource = "azure"\ncredential = "workload-identity"\n'  # nothing configured
        return {"vault_url": kv.url, "name": "contract", "via": "az"}


def test_get_secret_with_bearer_and_api_version(kv: FakeKeyVault, entra: FakeEntra) -> None:
    kv.set_secret("openai", '{"api_key": "sk-kv-1"}')
    src = source(kv, entra, name="openai", json_key="api_key", ttl="30m")
    now = time.time()
    cred = fetch(src)
    assert (cred.kind, cred.primary, cred.source) == ("secret", "sk-kv-1", "azure-keyvault")
    assert cred.refresh_at is not None and abs(cred.refresh_at - (now + 1800)) < 5
    (seen,) = kv.requests
    assert (seen.method, seen.path, seen.api_version) == ("GET", "/secrets/openai/", "7.4")
    assert seen.token in entra.issued
    (grant,) = [g for g in entra.grants if g.grant_type == "client_credentials"]
    assert grant.scope == VAULT_SCOPE and grant.client_id == "app-1"
    fetch(src)  # the token is kept: one grant for both reads
    assert entra.grant_count("client_credentials") == 1 and len(kv.requests) == 2


def test_pinned_version(kv: FakeKeyVault, entra: FakeEntra) -> None:
    old = kv.set_secret("k", "old-value")
    kv.set_secret("k", "new-value")
    assert fetch(source(kv, entra, name="k")).primary == "new-value"
    assert fetch(source(kv, entra, name="k", version=old)).primary == "old-value"
    assert kv.requests[-1].path == f"/secrets/k/{old}"


def test_not_found_and_denied_name_the_secret(kv: FakeKeyVault, entra: FakeEntra) -> None:
    with pytest.raises(SourceError) as info:
        fetch(source(kv, entra, name="missing"))
    assert info.value.line() == f"tokend: s: secret 'missing' in {kv.url} not found"
    assert not info.value.retryable
    kv.set_secret("locked", "x")
    kv.denied.add("locked")
    with pytest.raises(SourceError) as info:
        fetch(source(kv, entra, name="locked"))
    assert info.value.message.startswith(
        f"access denied reading secret 'locked' in {kv.url}: Forbidden/ForbiddenByRbac"
    )
    assert "getSecret/action" in info.value.message and not info.value.retryable


def test_refused_token_is_minted_again_then_reported(kv: FakeKeyVault, entra: FakeEntra) -> None:
    kv.set_secret("k", "v")
    kv.entra = FakeEntra.__new__(FakeEntra)  # a vault that trusts another tenant's tokens only
    kv.entra.issued = []
    kv.entra.tenant = "other-tenant"
    with pytest.raises(SourceError) as info:
        fetch(source(kv, entra, name="k"))
    assert "Key Vault refused the token" in info.value.message
    assert "https://login.microsoftonline.com/other-tenant" in info.value.message
    assert entra.grant_count("client_credentials") == 2 and len(kv.requests) == 2


def test_the_azure_profiles_errors_are_restated(
    kv: FakeKeyVault, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TD_AZ_SECRET", "not-the-" + APP_SECRET)
    with pytest.raises(SourceError) as info:
        fetch(source(kv, entra, name="k"))
    assert info.value.line().startswith("tokend: s: azure profile 'az': ")
    assert "AADSTS7000215" in info.value.message and APP_SECRET not in info.value.line()


def test_config_checks(kv: FakeKeyVault, entra: FakeEntra) -> None:
    with pytest.raises(ConfigError, match="vault_url: expected https://"):
        source(kv, entra, name="k", vault_url="http://kv.vault.azure.net")
    with pytest.raises(ConfigError, match="letters, digits and dashes"):
        source(kv, entra, name="../keys/k")
    assert scope_for("myvault.vault.azure.net") == VAULT_SCOPE
    assert scope_for("myvault.vault.usgovcloudapi.net") == "https://vault.usgovcloudapi.net/.default"
    assert scope_for("127.0.0.1") == VAULT_SCOPE


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["5xx", "hang"])
def test_cached_secret_served_while_key_vault_fails(
    kv: FakeKeyVault, entra: FakeEntra, clock: FakeClock, fault: str
) -> None:
    kv.set_secret("k", "sk-cached-kv")
    broker = Broker(secret_config(kv, entra, name="k", ttl="10m", timeout="1s"), clock=clock)
    try:
        assert broker.get("s").primary == "sk-cached-kv"
        kv.set_secret("k", "sk-rotated-kv")
        if fault == "5xx":
            kv.fail(503, times=10)
        else:
            kv.hang()
        clock.advance(601)
        assert broker.get("s").primary == "sk-cached-kv"
        row = _settle(broker, "s")
        assert row["failures"] == 1 and row["state"] == "stale"
        assert ("HTTP 503" if fault == "5xx" else "did not answer") in str(row["last_error"])
        kv.hang(False)
        kv._failures.clear()
        clock.advance(400)
        broker.get("s")
        row = _settle(broker, "s")
        assert broker.get("s").primary == "sk-rotated-kv" and row["rotations"] == 1
    finally:
        kv.hang(False)
        broker.close()


def test_timeout(kv: FakeKeyVault, entra: FakeEntra) -> None:
    kv.hang()
    start = time.monotonic()
    with pytest.raises(SourceTimeout):
        fetch(source(kv, entra, name="k"), timeout=2.0)
    assert time.monotonic() - start < 4
    kv.hang(False)


def _settle(broker: Broker, name: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        (row,) = [r for r in broker.status() if r["profile"] == name]
        if not row.get("refreshing"):
            return row
        assert time.monotonic() < deadline
        time.sleep(0.02)
