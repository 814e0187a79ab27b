# ruff: noqa: F811 (pytest fixtures imported from tests.fakes.azure_env are parameters here)
"""``source = "azure"``: real azure-identity and MSAL against the fakes in tests/fakes/entra.py.

Nothing of azure-identity or MSAL is mocked: the fake Entra authority speaks
HTTPS with a test CA, managed identity answers on loopback, ``az`` is a script.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.azure_env import AzureEnv, azure_env, entra, managed_identity, test_ca  # noqa: F401
from tests.fakes.entra import FakeEntra, FakeManagedIdentity, SilentEndpoint, TestCA, az_log
from tests.sources.test_contract import MemoryKeyring, SourceContract, memory_keyring, profile_toml  # noqa: F401
from tokend.core import config
from tokend.core.broker import build_source
from tokend.core.credential import Credential
from tokend.core.errors import (
    EXIT_FAILED,
    ConfigError,
    SourceError,
    SourceUnavailable,
    TokendError,
    UsageError,
)
from tokend.sources.azure import DEFAULT_SCOPE, AzureSource
from tokend.sources.base import FetchRequest, LoginContext

CLIENT_SECRET = "sp-secret-Zq8~not-in-any-message"


def make(options: dict[str, Any], clock: Any = time.time) -> AzureSource:
    profile = config.parse(profile_toml("azure", options), None).profile("contract")
    source = build_source(profile, clock)
    assert isinstance(source, AzureSource)
    return source


def fetch(source: AzureSource, *, timeout: float = 10.0, forced: bool = False) -> Credential:
    return source.fetch(FetchRequest(profile="contract", timeout=timeout, forced=forced))


def authority(entra: FakeEntra) -> dict[str, Any]:
    return {"authority": entra.url, "disable_instance_discovery": True, "tenant_id": entra.tenant}


@pytest.fixture
def sp_env(monkeypatch: pytest.MonkeyPatch, azure_env: AzureEnv, entra: FakeEntra) -> dict[str, Any]:
    """A service principal with its secret in an environment variable."""
    entra.register("app-secret", secret=CLIENT_SECRET)
    monkeypatch.setenv("TOKEND_TEST_SP_SECRET", CLIENT_SECRET)
    return {
        "credential": "client-secret",
        "client_id": "app-secret",
        "client_secret_env": "TOKEND_TEST_SP_SECRET",
        **authority(entra),
    }


class TestAzureContract(SourceContract):
    source_name = "azure"

    @pytest.fixture
    def options(self, sp_env: dict[str, Any]) -> dict[str, Any]:
        return sp_env

    @pytest.fixture
    def unavailable_options(self, azure_env: AzureEnv) -> dict[str, Any]:
        return {"credential": "workload-identity"}  # no AZURE_FEDERATED_TOKEN_FILE here


# -- service principals -------------------------------------------------------------------------


def test_client_secret_from_env(sp_env: dict[str, Any], entra: FakeEntra) -> None:
    before = time.time()
    cred = fetch(make(sp_env))
    token = cred.fields["token"]
    assert token.startswith("entra-secret-") and token in entra.issued
    assert cred.kind == "bearer" and cred.source == "azure"
    assert cred.expires_at is not None and before + 3590 < cred.expires_at < time.time() + 3610
    assert cred.refresh_at is None  # Entra gave no refresh_in: the broker's policy decides
    [grant] = entra.grants
    assert (grant.grant_type, grant.client_id) == ("client_credentials", "app-secret")
    assert grant.scope == DEFAULT_SCOPE


def test_every_fetch_asks_upstream(sp_env: dict[str, Any], entra: FakeEntra) -> None:
    # The broker is the cache: a refresh must not get MSAL's cached token back.
    source = make(sp_env)
    tokens = {fetch(source).fields["token"] for _ in range(2)} | {fetch(source, forced=True).fields["token"]}
    assert len(tokens) == 3
    assert entra.grant_count("client_credentials") == 3


def test_refresh_on_becomes_refresh_at(sp_env: dict[str, Any], entra: FakeEntra) -> None:
    entra.expires_in, entra.refresh_in = 7200, 1800
    now = time.time()
    cred = fetch(make(sp_env))
    assert cred.refresh_at is not None and now + 1790 < cred.refresh_at < now + 1810
    assert cred.expires_at is not None and now + 7190 < cred.expires_at < now + 7210


def test_client_secret_from_the_keychain(
    azure_env: AzureEnv, entra: FakeEntra, memory_keyring: MemoryKeyring
) -> None:
    entra.register("app-kc", secret=CLIENT_SECRET)
    memory_keyring.set_password("tokend", "sp-secret", CLIENT_SECRET)
    options = {
        "credential": "client-secret",
        "client_id": "app-kc",
        "client_secret_username": "sp-secret",
        **authority(entra),
    }
    assert fetch(make(options)).fields["token"].startswith("entra-secret-")
    # Default keychain entry: service "tokend", account = the profile name.
    with pytest.raises(SourceUnavailable, match="no client secret in the keychain for tokend/contract"):
        fetch(make({k: v for k, v in options.items() if k != "client_secret_username"}))


def test_client_secret_never_in_the_config_file() -> None:
    with pytest.raises(ConfigError, match=r"profiles\.contract\.client_secret: unknown key"):
        make({"credential": "client-secret", "client_secret": CLIENT_SECRET})


def test_missing_secret_variable_is_unavailable(
    sp_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKEND_TEST_SP_SECRET")
    with pytest.raises(SourceUnavailable, match="TOKEND_TEST_SP_SECRET"):
        fetch(make(sp_env))


def test_missing_tenant_or_client_is_unavailable(azure_env: AzureEnv) -> None:
    with pytest.raises(SourceUnavailable, match="needs tenant_id or client_id"):
        fetch(make({"credential": "client-secret", "client_secret_env": "X"}))


def test_wrong_secret_shows_the_aadsts_code_and_no_secret(
    sp_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TOKEND_TEST_SP_SECRET", "wrong-" + CLIENT_SECRET)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as info:
        fetch(make(sp_env))
    line = info.value.line()
    assert info.value.exit_status == EXIT_FAILED
    assert "AADSTS7000215: Invalid client secret provided" in line
    assert CLIENT_SECRET not in line and "Trace ID" not in line and "\n" not in line
    assert line.startswith("tokend: contract: ")
    assert CLIENT_SECRET not in caplog.text


def test_unknown_application(sp_env: dict[str, Any], entra: FakeEntra) -> None:
    with pytest.raises(SourceError, match=r"AADSTS700016: Application with identifier 'nobody'"):
        fetch(make({**sp_env, "client_id": "nobody"}))


def test_server_errors_are_retryable(sp_env: dict[str, Any], entra: FakeEntra) -> None:
    entra.fail_next(503, "temporarily_unavailable", "AADSTS90033: A transient error has occurred.")
    start = time.monotonic()
    with pytest.raises(SourceError) as info:
        fetch(make(sp_env))
    assert info.value.retryable and "503" in info.value.message  # MSAL keeps no body of a 5xx
    assert time.monotonic() - start < 5  # no retry ladder on HTTP status
    assert fetch(make(sp_env)).fields["token"].startswith("entra-secret-")


def test_certificate(azure_env: AzureEnv, entra: FakeEntra, test_ca: TestCA) -> None:
    path, cert = test_ca.client_certificate("app-cert")
    entra.register("app-cert", certificate=cert)
    options = {"credential": "certificate", "client_id": "app-cert", "certificate_path": str(path)}
    options.update(authority(entra))
    assert fetch(make(options)).fields["token"].startswith("entra-certificate-")
    # A certificate Entra does not know for the app.
    other, _ = test_ca.client_certificate("other-cert")
    with pytest.raises(SourceError, match="AADSTS700027"):
        fetch(make({**options, "certificate_path": str(other)}))


def test_a_certificate_others_can_replace_is_refused(
    azure_env: AzureEnv, entra: FakeEntra, test_ca: TestCA
) -> None:
    path, cert = test_ca.client_certificate("shared-cert")
    entra.register("shared-cert", certificate=cert)
    Path(path).chmod(0o664)
    options = {"credential": "certificate", "client_id": "shared-cert", "certificate_path": str(path)}
    with pytest.raises(SourceError, match="refusing a secret file writable by group or others") as info:
        fetch(make({**options, **authority(entra)}))
    assert not info.value.retryable and not entra.issued  # nothing reached Entra


def test_certificate_path_required(azure_env: AzureEnv, entra: FakeEntra) -> None:
    with pytest.raises(SourceUnavailable, match="certificate_path"):
        fetch(make({"credential": "certificate", "client_id": "x", **authority(entra)}))


def test_workload_identity(azure_env: AzureEnv, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch) -> None:
    federated = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"
    token_file = azure_env.root / "federated-token"
    token_file.write_text(federated)
    entra.register("app-wi", federated_tokens={federated})
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_CLIENT_ID", "app-wi")
    monkeypatch.setenv("AZURE_TENANT_ID", entra.tenant)
    options = {"credential": "workload-identity", "authority": entra.url, "disable_instance_discovery": True}
    assert fetch(make(options)).fields["token"].startswith("entra-federated-")
    # A token file Entra does not trust: the error shows the code, never the file's token.
    token_file.write_text(federated + "x")
    with pytest.raises(SourceError) as info:
        fetch(make(options))
    assert "AADSTS700027" in info.value.message and federated not in info.value.message


# -- managed identity -----------------------------------------------------------------------------


def test_managed_identity_app_service(
    azure_env: AzureEnv, managed_identity: FakeManagedIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in managed_identity.app_service_env().items():
        monkeypatch.setenv(key, value)
    cred = fetch(make({"credential": "managed-identity", "client_id": "uami-client"}))
    assert cred.fields["token"] in managed_identity.issued
    [req] = managed_identity.requests
    assert req["path"] == "/msi/token" and req["client_id"] == "uami-client"
    assert req["resource"] == "https://cognitiveservices.azure.com"


def test_managed_identity_imds(
    azure_env: AzureEnv, managed_identity: FakeManagedIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in managed_identity.imds_env().items():
        monkeypatch.setenv(key, value)
    resource_id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/x/u"
    cred = fetch(
        make(
            {
                "credential": "managed-identity",
                "resource": "https://management.azure.com/",
                "resource_id": resource_id,
            }
        )
    )
    assert cred.fields["token"] in managed_identity.issued
    [req] = managed_identity.requests
    assert req["path"] == "/metadata/identity/oauth2/token"
    assert req["resource"] == "https://management.azure.com" and req["msi_res_id"] == resource_id


def test_imds_absent_fails_fast(azure_env: AzureEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    with SilentEndpoint() as closed:
        url = closed.url
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url)  # nothing listens there now
    start = time.monotonic()
    with pytest.raises(SourceUnavailable) as info:
        fetch(make({"credential": "managed-identity"}))
    assert time.monotonic() - start < 5
    assert "IMDS" in info.value.message and "no managed identity" in info.value.message


def test_imds_that_never_answers_is_bounded(azure_env: AzureEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    with SilentEndpoint() as silent:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", silent.url)
        start = time.monotonic()
        with pytest.raises(TokendError):
            fetch(make({"credential": "managed-identity"}), timeout=3.0)
        elapsed = time.monotonic() - start
    assert elapsed < 5.0, f"took {elapsed:.1f}s for a 3s fetch timeout (no 24s retry ladder)"


# -- the Azure CLI ------------------------------------------------------------------------------------


def az(env: AzureEnv, *args: str) -> None:
    subprocess.run([str(env.bin_dir / "az"), *args], check=True, timeout=30, capture_output=True)


def test_cli_credential(azure_env: AzureEnv) -> None:
    azure_env.install_az()
    az(azure_env, "login", "--user", "alice@tokend.test")
    before = time.time()
    cred = fetch(make({"credential": "cli"}))
    assert cred.fields["token"].startswith("az-alice-")
    assert az_log(azure_env.azure_dir) == [cred.fields["token"]]
    assert cred.expires_at is not None and before + 3590 <= cred.expires_at <= time.time() + 3600


def test_cli_not_signed_in(azure_env: AzureEnv) -> None:
    azure_env.install_az()
    with pytest.raises(SourceUnavailable) as info:
        fetch(make({"credential": "cli"}))
    assert "az login" in info.value.message and info.value.exit_status == EXIT_FAILED


def test_cli_not_installed(azure_env: AzureEnv) -> None:
    with pytest.raises(SourceUnavailable, match="Azure CLI not found"):
        fetch(make({"credential": "cli"}))


def test_cli_fingerprint_follows_the_signed_in_identity(azure_env: AzureEnv) -> None:
    azure_env.install_az()
    source = make({"credential": "cli"})
    signed_out = source.fingerprint()
    az(azure_env, "login", "--user", "alice@tokend.test")
    alice = source.fingerprint()
    assert alice != signed_out
    fetch(source)
    fetch(source)
    assert source.fingerprint() == alice  # token requests change nothing
    az(azure_env, "account", "add", "--subscription", "sub-2", "--user", "alice@tokend.test")
    az(azure_env, "account", "set", "--subscription", "sub-2")
    other_sub = source.fingerprint()
    assert other_sub != alice
    az(azure_env, "logout")
    assert source.fingerprint() not in (alice, other_sub)


def test_msal_cache_churn_is_not_an_identity_change(azure_env: AzureEnv) -> None:
    azure_env.install_az()
    az(azure_env, "login", "--user", "alice@tokend.test")
    source = make({"credential": "cli"})
    before = source.fingerprint()
    cache = azure_env.azure_dir / "msal_token_cache.json"
    doc = json.loads(cache.read_text())
    doc["AccessToken"] = {"k": {"secret": "refreshed-by-az"}}  # az refreshed a token: accounts unchanged
    cache.write_text(json.dumps(doc))
    assert source.fingerprint() == before
    doc["Account"] = {}  # signed out underneath
    cache.write_text(json.dumps(doc))
    assert source.fingerprint() != before


# -- DefaultAzureCredential -----------------------------------------------------------------------


def test_default_uses_the_environment(
    azure_env: AzureEnv, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> None:
    entra.register("app-env", secret=CLIENT_SECRET)
    monkeypatch.setenv("AZURE_CLIENT_ID", "app-env")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", entra.tenant)
    options = {"authority": entra.url, "disable_instance_discovery": True}
    assert fetch(make(options)).fields["token"].startswith("entra-secret-")


def test_default_falls_through_to_the_cli(azure_env: AzureEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    azure_env.install_az()
    az(azure_env, "login", "--user", "bob@tokend.test")
    with SilentEndpoint() as closed:
        url = closed.url
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url)
    assert fetch(make({})).fields["token"].startswith("az-bob-")


def test_default_lists_what_it_tried(azure_env: AzureEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    azure_env.install_az()  # signed out
    with SilentEndpoint() as closed:
        url = closed.url
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", url)
    start = time.monotonic()
    with pytest.raises(SourceUnavailable) as info:
        fetch(make({"exclude_powershell": True, "exclude_developer_cli": True}))
    assert time.monotonic() - start < 8
    message = info.value.message
    for tried in ("EnvironmentCredential", "ManagedIdentityCredential", "AzureCliCredential"):
        assert tried in message
    assert "AzurePowerShellCredential" not in message  # excluded
    assert "next: sign in with `az login`" in message
    assert "aka.ms" not in message and "\n" not in message


def test_default_exclusions(
    azure_env: AzureEnv, managed_identity: FakeManagedIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in managed_identity.app_service_env().items():
        monkeypatch.setenv(key, value)
    assert fetch(make({})).fields["token"].startswith("mi-token-")
    with pytest.raises(SourceUnavailable) as info:
        fetch(
            make(
                {
                    "exclude_managed_identity": True,
                    "exclude_cli": True,
                    "exclude_powershell": True,
                    "exclude_developer_cli": True,
                }
            )
        )
    assert "ManagedIdentityCredential" not in info.value.message


# -- options --------------------------------------------------------------------------------------


def test_scopes_or_resource(sp_env: dict[str, Any], entra: FakeEntra) -> None:
    fetch(make({**sp_env, "resource": "https://management.azure.com/"}))
    fetch(make({**sp_env, "scopes": ["api://tokend-test/.default"]}))
    assert [g.scope for g in entra.grants] == [
        "https://management.azure.com/.default",
        "api://tokend-test/.default",
    ]
    with pytest.raises(ConfigError, match="scopes or resource, not both"):
        fetch(make({**sp_env, "resource": "https://x", "scopes": ["y"]}))


def test_ca_bundle_option(sp_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, test_ca: TestCA) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(SourceError, match=r"(?i)certificate"):
        fetch(make(sp_env))  # the test CA is unknown to the system store
    assert fetch(make({**sp_env, "ca_bundle": str(test_ca.ca_path)})).fields["token"]


def test_unknown_credential_kind() -> None:
    with pytest.raises(ConfigError, match="expected one of default, cli, managed-identity"):
        make({"credential": "password"})


def test_login_is_for_interactive_kinds(azure_env: AzureEnv) -> None:
    ctx = LoginContext(profile="contract", echo=lambda _: None)
    with pytest.raises(UsageError, match=r"run `az login`"):
        make({"credential": "cli"}).login(ctx)
    with pytest.raises(UsageError, match="signs in without a person"):
        make({"credential": "managed-identity"}).login(ctx)


def test_non_interactive_kinds_have_no_identity_files(azure_env: AzureEnv) -> None:
    assert make({"credential": "client-secret"}).fingerprint() is None
    assert make({"credential": "managed-identity"}).fingerprint() is None
    assert isinstance(make({"credential": "cli"}).fingerprint(), str)


def test_source_module_imports_no_sdk() -> None:
    code = (
        "import sys, tokend.sources.azure\nprint([m for m in sys.modules if m.startswith(('azure', 'msal'))])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    ).stdout
    assert out.strip() == "[]"
