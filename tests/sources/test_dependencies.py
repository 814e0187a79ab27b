"""Profiles that need another profile's token (Key Vault, Secret Manager) get it through the broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.azure_env import AzureEnv, azure_env, entra, test_ca
from tests.fakes.entra import FakeEntra, TestCA
from tests.fakes.keyvault import FakeKeyVault, fake_keyvault
from tests.sources.test_secrets_keyvault import APP_SECRET, VAULT_SCOPE, azure_profile
from tokend.core import config
from tokend.core.broker import Broker, build_source
from tokend.core.credential import Credential
from tokend.core.errors import SourceError

__all__ = ["azure_env", "entra", "test_ca"]  # fixtures, used by name

N = 10  # more secret profiles than the broker's 8 fetch threads


@pytest.fixture
def kv(
    azure_env: AzureEnv, test_ca: TestCA, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKeyVault]:
    entra.register("app-1", secret=APP_SECRET)
    monkeypatch.setenv("TD_AZ_SECRET", APP_SECRET)
    yield from fake_keyvault(test_ca, entra)


def many_secrets(kv: FakeKeyVault, entra: FakeEntra, **az: Any) -> config.Config:
    text = azure_profile(entra, **az)
    for i in range(N):
        kv.set_secret(f"k{i}", f"sk-value-{i}")
        text += f'[profiles.s{i}]\nsource = "azure-keyvault"\nvault_url = "{kv.url}"\nname = "k{i}"\n'
        text += 'via = "az"\ntimeout = "30s"\n'
    return config.parse(text, None)


@pytest.mark.timeout(90)
def test_ten_secret_profiles_over_one_via_share_one_token_fetch(kv: FakeKeyVault, entra: FakeEntra) -> None:
    """Ten cold fetches at once on eight threads: one token grant, no pool deadlock, a status row."""
    cfg = many_secrets(kv, entra)
    assert "az:vault.azure.net" in cfg.profiles  # az serves Cognitive Services tokens: the vault's is another
    broker = Broker(cfg)
    start = threading.Barrier(N)

    def get(i: int) -> Credential:
        start.wait()
        return broker.get(f"s{i}", timeout=60)

    try:
        began = time.monotonic()
        with ThreadPoolExecutor(N) as callers:
            creds = list(callers.map(get, range(N)))
        elapsed = time.monotonic() - began
        assert [c.primary for c in creds] == [f"sk-value-{i}" for i in range(N)]
        assert elapsed < 25, "secret fetches waited out their timeout: the pool deadlocked"
        (grant,) = [g for g in entra.grants if g.grant_type == "client_credentials"]
        assert grant.scope == VAULT_SCOPE
        assert {r.token for r in kv.requests} == {entra.issued[-1]}
        rows = {r["profile"]: r for r in broker.status()}
        token_row = rows["az:vault.azure.net"]
        assert token_row["source"] == "azure" and token_row["fetches"] == 1
        assert token_row["state"] == "fresh"
        assert rows["az"]["state"] == "idle"  # az's own token was never needed
    finally:
        broker.close()


def test_a_via_that_serves_the_vault_token_is_used_itself(kv: FakeKeyVault, entra: FakeEntra) -> None:
    cfg = many_secrets(kv, entra, scopes=[VAULT_SCOPE])
    assert not [name for name in cfg.profiles if ":" in name]
    broker = Broker(cfg)
    try:
        assert broker.get("s0").primary == "sk-value-0"
        assert broker.get("az").primary == entra.issued[-1]  # the same token, from the cache
        assert entra.grant_count("client_credentials") == 1
    finally:
        broker.close()


def test_without_via_the_default_credential_token_is_an_internal_profile() -> None:
    cfg = config.parse(
        '[profiles.kv1]\nsource = "azure-keyvault"\nvault_url = "https://a.vault.azure.net"\nname = "x"\n'
        '[profiles.kv2]\nsource = "azure-keyvault"\nvault_url = "https://b.vault.azure.net"\nname = "y"\n'
        '[profiles.sm]\nsource = "gcp-secretmanager"\nname = "projects/p/secrets/s"\n',
        None,
    )
    token = cfg.profile("azure:vault.azure.net")  # both vaults share DefaultAzureCredential's token
    assert token.source == "azure" and token.options["credential"] == "default"
    assert token.options["scopes"] == (VAULT_SCOPE,)
    google = cfg.profile("google:cloud-platform")
    assert google.source == "google" and google.options["token"] == "access"
    assert not config.PROFILE_NAME.fullmatch(token.name)  # nobody can write that name
    broker = Broker(cfg)
    try:
        assert {r["profile"] for r in broker.status()} == {
            "kv1",
            "kv2",
            "sm",
            "azure:vault.azure.net",
            "google:cloud-platform",
        }
    finally:
        broker.close()


def test_errors_of_the_token_profile_name_the_requesting_profile(
    kv: FakeKeyVault, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TD_AZ_SECRET", "wrong-" + APP_SECRET)
    broker = Broker(many_secrets(kv, entra))
    try:
        with pytest.raises(SourceError) as info:
            broker.get("s3")
        assert info.value.line().startswith("tokend: s3: azure profile 'az': ")
        rows = {r["profile"]: r for r in broker.status()}
        assert rows["az:vault.azure.net"]["state"] == "error"
    finally:
        broker.close()


def test_a_secret_profile_signs_in_as_its_via_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tokend login kv`` is az's sign-in, and the internal token profile uses that same sign-in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cfg = config.parse(
        '[profiles.az]\nsource = "azure"\ncredential = "device-code"\nclient_id = "app"\n'
        '[profiles.kv]\nsource = "azure-keyvault"\nvault_url = "https://k.vault.azure.net"\nname = "k"\n'
        'via = "az"\n',
        None,
    )
    kv, az, token = (build_source(cfg.profile(n), time.time) for n in ("kv", "az", "az:vault.azure.net"))
    assert kv.supports_login and kv.identity() == az.identity() == token.identity() == "azure:az"
    assert kv.fingerprint() == az.fingerprint() == token.fingerprint() == "signed-out"
    record = tmp_path / "tokend" / "azure" / "az.json"  # what `tokend login az` (or kv) writes
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    assert kv.fingerprint() == token.fingerprint() == az.fingerprint() != "signed-out"
