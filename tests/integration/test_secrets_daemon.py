"""Secrets-manager profiles through real ``tokend serve`` / ``tokend-print`` / ``tokend status``.

The fakes (Vault, Secret Manager behind FakeGoogle, Key Vault behind FakeEntra,
an ``op`` executable) run in this test process or its sandbox; the daemon
reaches them over loopback. Every daemon is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.azure_env import AZURE_VARS
from tests.fakes.entra import FakeEntra, TestCA
from tests.fakes.gcp_secretmanager import FakeSecretManager
from tests.fakes.google import FakeGoogle
from tests.fakes.keyvault import FakeKeyVault
from tests.fakes.op import install_fake_op
from tests.fakes.vault import DynamicRole, FakeVault

from .conftest import Result, Sandbox

VAULT_VARS = ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "OP_SERVICE_ACCOUNT_TOKEN")


@pytest.fixture
def vault() -> Iterator[FakeVault]:
    with FakeVault() as fake:
        yield fake


def env_for(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in sandbox.env().items() if k not in VAULT_VARS + AZURE_VARS}
    env.update(extra)
    return env


def wait_for(check: object, timeout: float = 10.0) -> Result:
    deadline = time.monotonic() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if result is not None:
            return result  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def no_secret_on_disk(sandbox: Sandbox, secrets: list[str], skip: tuple[Path, ...] = ()) -> None:
    for path in sandbox.root.rglob("*"):
        if not path.is_file() or any(s in path.parents for s in skip) or path.suffix == ".log":
            continue
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} written to {path}"


@pytest.mark.timeout(90)
def test_vault_kv_rotation_status_and_faults(sandbox: Sandbox, vault: FakeVault) -> None:
    vault.put_kv2("openai", {"api_key": "sk-vault-it-000001"})
    token = vault.token()
    sandbox.write_config(
        f"""
        [profiles.openai]
        source = "vault"
        address = "{vault.url}"
        token = "env:TD_IT_VAULT_TOKEN"
        mount = "secret"
        path = "openai"
        json_key = "api_key"
        ttl = "1s"
        timeout = "2s"

        [profiles.missing]
        source = "vault"
        address = "{vault.url}"
        token = "env:TD_IT_VAULT_TOKEN"
        mount = "secret"
        path = "nothing/here"
        """
    )
    env = env_for(sandbox, TD_IT_VAULT_TOKEN=token)
    daemon = sandbox.start_daemon(env=env)
    first = sandbox.print_("openai", env=env)
    assert (first.status, first.out, first.err) == (0, "sk-vault-it-000001\n", "")

    vault.put_kv2("openai", {"api_key": "sk-vault-it-000002"})  # rotated upstream
    wait_for(lambda: ((r := sandbox.print_("openai", env=env)).out == "sk-vault-it-000002\n" and r) or None)
    row = sandbox.profile_status("openai")
    assert row["rotations"] == 1 and row["source"] == "vault"
    text = sandbox.tokend("status", env=env)
    assert "ROTATIONS" in text.out and "sk-vault" not in text.out

    gone = sandbox.print_("missing", env=env)
    assert gone.status == 1 and gone.out == ""
    assert gone.err_lines == ["tokend: missing: Vault secret 'secret/data/nothing/here' not found"]

    # Vault sealed: the cached value is still served, the error shows in status.
    vault.fail("secret/", 503, "Vault is sealed", times=1000)
    time.sleep(1.5)
    for _ in range(3):
        r = sandbox.print_("openai", env=env)
        assert (r.status, r.out) == (0, "sk-vault-it-000002\n"), r
    wait_for(lambda: "sealed" in str(sandbox.profile_status("openai").get("last_error")) or None)

    daemon.stop()
    log = daemon.log_text()
    assert "sk-vault-it" not in log and token not in log
    no_secret_on_disk(sandbox, ["sk-vault-it-000001", "sk-vault-it-000002", token])


@pytest.mark.timeout(90)
def test_vault_dynamic_lease_renewed_then_replaced(sandbox: Sandbox, vault: FakeVault) -> None:
    vault.db_roles["app"] = DynamicRole(ttl=6, max_ttl=3600)
    vault.approle("it-role", "it-secret-id-value")
    sandbox.write_config(
        f"""
        [profiles.db]
        source = "vault"
        address = "{vault.url}"
        auth = "approle"
        role_id = "it-role"
        secret_id = "env:TD_IT_SECRET_ID"
        path = "database/creds/app"
        min_ttl = "1s"
        timeout = "2s"
        """
    )
    env = env_for(sandbox, TD_IT_SECRET_ID="it-secret-id-value")
    daemon = sandbox.start_daemon(env=env)
    first = sandbox.print_("db", "--format", "json", env=env)
    assert first.status == 0, first
    doc = json.loads(first.out)
    assert doc["username"] == vault.issued[0]["username"] and doc["password"] == vault.issued[0]["password"]

    # The daemon renews the lease in the background (about 2/3 into its 6 s) ...
    wait_for(lambda: vault.calls("sys/leases/renew") or None, timeout=15)
    again = json.loads(sandbox.print_("db", "--format", "json", env=env).out)
    assert again["password"] == doc["password"] and len(vault.issued) == 1

    # ... and reads new credentials once the renewal is refused.
    vault.refuse_renewals = True
    wait_for(lambda: len(vault.issued) == 2 or None, timeout=15)
    newer = wait_for(
        lambda: ((r := sandbox.print_("db", env=env)).out == vault.issued[1]["password"] + "\n" and r) or None
    )
    assert newer.status == 0
    assert sandbox.profile_status("db")["rotations"] == 1
    assert [c.path for c in vault.calls("auth/")] == ["auth/approle/login"]
    daemon.stop()
    assert "it-secret-id-value" not in daemon.log_text()


@pytest.mark.timeout(60)
def test_vault_daemonless(sandbox: Sandbox, vault: FakeVault) -> None:
    vault.put_kv2("k", {"v": "sk-daemonless-vault"})
    sandbox.write_config(
        f'[profiles.k]\nsource = "vault"\naddress = "{vault.url}"\ntoken = "env:TD_IT_VAULT_TOKEN"\n'
        'mount = "secret"\npath = "k"\n'
    )
    env = env_for(sandbox, TD_IT_VAULT_TOKEN=vault.token(), TOKEND_NO_DAEMON="1")
    r = sandbox.print_("k", env=env)
    assert (r.status, r.out) == (0, "sk-daemonless-vault\n"), r
    assert sandbox.daemon_pids() == []


@pytest.mark.timeout(60)
def test_onepassword_through_the_daemon(sandbox: Sandbox) -> None:
    op = install_fake_op(sandbox.root / "bin")
    op.set_items({"CI": {"Gateway": {"key": "sk-op-it-0001"}}})
    op.set_state(token="ops_it_token_value_0001")
    sandbox.write_config(
        """
        [profiles.gw]
        source = "1password"
        reference = "op://CI/Gateway/key"

        [profiles.nope]
        source = "1password"
        reference = "op://CI/Nothing/key"
        """
    )
    env = env_for(
        sandbox,
        OP_SERVICE_ACCOUNT_TOKEN="ops_it_token_value_0001",
        PATH=f"{op.dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
    )
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("gw", env=env)
    assert (r.status, r.out) == (0, "sk-op-it-0001\n"), r
    missing = sandbox.print_("nope", env=env)
    assert missing.status == 1 and len(missing.err_lines) == 1
    assert missing.err.startswith("tokend: nope: 1Password item op://CI/Nothing/key not found")
    assert all("ops_it_token" not in " ".join(c["argv"]) for c in op.calls())
    daemon.stop()
    assert "ops_it_token_value_0001" not in daemon.log_text() and "sk-op-it" not in daemon.log_text()


@pytest.mark.timeout(60)
def test_gcp_secret_manager_through_the_daemon(sandbox: Sandbox) -> None:
    with FakeGoogle() as google, FakeSecretManager(google) as sm:
        sa = sandbox.root / "sa.json"
        sa.write_text(json.dumps(google.service_account("it@proj.iam.gserviceaccount.com")))
        os.chmod(sa, 0o600)
        sm.add_version("proj", "openai", "sk-gcp-it-0001")
        sandbox.write_config(
            f"""
            [profiles.g]
            source = "google"
            credentials_file = "{sa}"

            [profiles.openai]
            source = "gcp-secretmanager"
            via = "g"
            name = "projects/proj/secrets/openai"
            endpoint = "{sm.url}"

            [profiles.missing]
            source = "gcp-secretmanager"
            via = "g"
            name = "projects/proj/secrets/missing/versions/3"
            endpoint = "{sm.url}"
            """
        )
        env = env_for(sandbox, CLOUDSDK_CONFIG=str(sandbox.root / "gcloud"), NO_GCE_CHECK="true")
        env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
        sandbox.start_daemon(env=env)
        r = sandbox.print_("openai", env=env)
        assert (r.status, r.out) == (0, "sk-gcp-it-0001\n"), r
        assert sm.requests[0].principal == "it@proj.iam.gserviceaccount.com"
        gone = sandbox.print_("missing", env=env)
        assert gone.status == 1
        assert gone.err_lines == [
            "tokend: missing: secret projects/proj/secrets/missing/versions/3 not found"
        ]


@pytest.mark.timeout(60)
def test_key_vault_through_the_daemon(sandbox: Sandbox) -> None:
    ca = TestCA(sandbox.root)
    with FakeEntra(ca) as entra, FakeKeyVault(ca, entra) as kv:
        entra.register("app-1", secret="it-app-secret-value")
        kv.set_secret("openai", "sk-kv-it-0001")
        sandbox.write_config(
            f"""
            [profiles.az]
            source = "azure"
            credential = "client-secret"
            tenant_id = "{entra.tenant}"
            client_id = "app-1"
            client_secret_env = "TD_IT_AZ_SECRET"
            authority = "{entra.url}"
            disable_instance_discovery = true

            [profiles.openai]
            source = "azure-keyvault"
            via = "az"
            vault_url = "{kv.url}"
            name = "openai"
            """
        )
        env = env_for(sandbox, TD_IT_AZ_SECRET="it-app-secret-value", REQUESTS_CA_BUNDLE=str(ca.ca_path))
        daemon = sandbox.start_daemon(env=env)
        r = sandbox.print_("openai", env=env)
        assert (r.status, r.out) == (0, "sk-kv-it-0001\n"), r
        (seen,) = kv.requests
        assert seen.api_version == "7.4" and seen.token in entra.issued
        kv.denied.add("openai")
        refused = sandbox.print_("openai", "--refresh", env=env)
        assert (
            refused.status == 0 and refused.out == "sk-kv-it-0001\n"
        )  # a failed forced refresh serves the cache
        daemon.stop()
        assert "it-app-secret-value" not in daemon.log_text()
