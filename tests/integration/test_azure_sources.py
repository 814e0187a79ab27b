"""Azure profiles through real ``tokend serve`` / ``tokend-print`` processes: the Azure CLI
(with identity changes), service principals and managed identity against local fakes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.azure_env import AZURE_VARS
from tests.fakes.entra import FakeEntra, FakeManagedIdentity, TestCA, az_log, install_fake_az
from tests.integration.conftest import Sandbox

SECRET = "sp-secret-Q7~integration-only"


@pytest.fixture(scope="module")
def ca() -> Iterator[TestCA]:
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="td-ca", dir="/tmp"))
    try:
        yield TestCA(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def azure_env(sandbox: Sandbox, ca: TestCA | None = None, **extra: str) -> dict[str, str]:
    env = sandbox.env()
    for var in AZURE_VARS:
        env.pop(var, None)
    if ca is not None:
        env["REQUESTS_CA_BUNDLE"] = str(ca.ca_path)
    bin_dir = sandbox.root / "bin"
    env["PATH"] = f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"
    env.update(extra)
    return env


class Az:
    def __init__(self, sandbox: Sandbox, env: dict[str, str]) -> None:
        self.path = install_fake_az(sandbox.root / "bin", sys.executable)
        self.env = env
        self.config_dir = sandbox.home / ".azure"

    def __call__(self, *args: str) -> None:
        subprocess.run([str(self.path), *args], env=self.env, check=True, timeout=30, capture_output=True)

    def tokens(self) -> list[str]:
        return az_log(self.config_dir)


@pytest.mark.timeout(90)
def test_cli_identity_changes_are_followed(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.foundry]\nsource = "azure"\ncredential = "cli"\n')
    env = azure_env(sandbox)
    az = Az(sandbox, env)
    az("login", "--user", "alice@tokend.test")

    daemon = sandbox.start_daemon(env=env)
    first = sandbox.print_("foundry", env=env)
    assert first.status == 0, first
    assert first.out.startswith("az-alice-sub-alice-")
    assert sandbox.print_("foundry", env=env).out == first.out
    assert len(az.tokens()) == 1  # served from the daemon

    # `az account set`: the next request gets the new subscription's token, not the cached one.
    az("account", "add", "--subscription", "sub-2", "--user", "alice@tokend.test")
    az("account", "set", "--subscription", "sub-2")
    switched = sandbox.print_("foundry", env=env)
    assert switched.status == 0, switched
    assert switched.out.startswith("az-alice-sub-2-")
    assert len(az.tokens()) == 2

    # `az logout`: nothing is served from the previous identity.
    az("logout")
    out = sandbox.print_("foundry", env=env)
    assert out.status == 1, out
    assert out.out == ""
    assert len(out.err_lines) == 1 and out.err.startswith("tokend: foundry: ")
    assert "az login" in out.err

    # Another person signs in.
    az("login", "--user", "bob@tokend.test")
    bob = sandbox.print_("foundry", env=env)
    assert bob.status == 0, bob
    assert bob.out.startswith("az-bob-")
    log = daemon.log_text()
    assert "identity changed" in log
    assert not any(token in log for token in az.tokens())


@pytest.mark.timeout(60)
def test_cli_identity_change_daemonless(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.foundry]\nsource = "azure"\ncredential = "cli"\n')
    env = azure_env(sandbox, TOKEND_NO_DAEMON="1")
    az = Az(sandbox, env)
    az("login", "--user", "alice@tokend.test")
    alice = sandbox.print_("foundry", env=env)
    assert alice.status == 0 and alice.out.startswith("az-alice-"), alice
    assert sandbox.print_("foundry", env=env).out == alice.out  # the shared cache
    az("login", "--user", "bob@tokend.test")
    bob = sandbox.print_("foundry", env=env)
    assert bob.status == 0 and bob.out.startswith("az-bob-"), bob


@pytest.mark.timeout(60)
def test_service_principal_errors_name_the_code_never_the_secret(sandbox: Sandbox, ca: TestCA) -> None:
    with FakeEntra(ca) as entra:
        entra.register("app-1", secret=SECRET)
        sandbox.write_config(
            f"""\
            [profiles.sp]
            source = "azure"
            credential = "client-secret"
            tenant_id = "{entra.tenant}"
            client_id = "app-1"
            client_secret_env = "TOKEND_TEST_SP_SECRET"
            authority = "{entra.url}"
            disable_instance_discovery = true
            """
        )
        wrong = azure_env(sandbox, ca, TOKEND_TEST_SP_SECRET="not-" + SECRET)
        daemon = sandbox.start_daemon(env=wrong)
        r = sandbox.print_("sp", env=wrong)
        assert r.status == 1, r
        assert r.out == "" and len(r.err_lines) == 1
        assert "AADSTS7000215" in r.err and SECRET not in r.err and "Trace ID" not in r.err
        daemon.stop()
        assert SECRET not in daemon.log_text()

        right = azure_env(sandbox, ca, TOKEND_TEST_SP_SECRET=SECRET)
        sandbox.start_daemon(env=right)
        ok = sandbox.print_("sp", "--format", "json", env=right)
        assert ok.status == 0, ok
        assert '"entra-secret-' in ok.out and '"expires_at"' in ok.out


@pytest.mark.timeout(60)
def test_managed_identity_through_the_daemon(sandbox: Sandbox) -> None:
    with FakeManagedIdentity() as mi:
        sandbox.write_config('[profiles.mi]\nsource = "azure"\ncredential = "managed-identity"\n')
        env = azure_env(sandbox, **mi.imds_env())
        sandbox.start_daemon(env=env)
        r = sandbox.print_("mi", env=env)
        assert r.status == 0, r
        assert r.out.strip() in mi.issued


@pytest.mark.timeout(60)
def test_no_managed_identity_answers_quickly(sandbox: Sandbox) -> None:
    sandbox.write_config('[profiles.mi]\nsource = "azure"\ncredential = "managed-identity"\n')
    env = azure_env(sandbox, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9", TOKEND_NO_DAEMON="1")
    start = time.monotonic()
    r = sandbox.print_("mi", env=env)
    assert r.status == 1, r
    assert time.monotonic() - start < 8
    assert "IMDS" in r.err and "no managed identity" in r.err and len(r.err_lines) == 1
