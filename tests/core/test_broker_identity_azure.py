# ruff: noqa: F811 (pytest fixtures imported from tests.fakes.azure_env are parameters here)
"""The broker's identity hook with the azure source: ``az logout`` / ``az account set`` /
another ``az login`` make ``credential = "cli"`` profiles refetch instead of serving the
previous identity's token (the generic hook is tested in tests/core/test_broker_identity.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.fakes.azure_env import AzureEnv, azure_env, test_ca  # noqa: F401
from tests.fakes.entra import az_log
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.errors import SourceUnavailable
from tokend.core.localcache import LocalCache

CONFIG = """\
[profiles.foundry]
source = "azure"
credential = "cli"
"""


@pytest.fixture
def az(azure_env: AzureEnv) -> Iterator[object]:
    path = azure_env.install_az()

    def run(*args: str) -> None:
        subprocess.run([str(path), *args], check=True, timeout=30, capture_output=True)

    run("login", "--user", "alice@tokend.test")
    yield run


def token(broker: Broker) -> str:
    return broker.get("foundry").fields["token"]


@pytest.mark.parametrize("shared_cache", [False, True], ids=["daemon", "daemonless"])
def test_cli_profile_follows_the_signed_in_identity(
    az: object, azure_env: AzureEnv, shared_cache: bool
) -> None:
    cfg = config.parse(CONFIG, None)

    def broker() -> Broker:
        # Daemonless: every process has a broker of its own over one shared cache.
        store = LocalCache(str(azure_env.root / "run"), clock=time.time) if shared_cache else None
        return Broker(cfg, clock=time.time, store=store)

    b = broker()
    alice = token(b)
    assert alice.startswith("az-alice-sub-alice-")
    assert token(b) == alice and len(az_log(azure_env.azure_dir)) == 1
    if shared_cache:
        b.close()
        b = broker()
        assert token(b) == alice and len(az_log(azure_env.azure_dir)) == 1

    az("account", "add", "--subscription", "sub-2", "--user", "alice@tokend.test")  # type: ignore[operator]
    az("account", "set", "--subscription", "sub-2")  # type: ignore[operator]
    if shared_cache:
        b.close()
        b = broker()
    assert token(b).startswith("az-alice-sub-2-")

    az("logout")  # type: ignore[operator]
    if shared_cache:
        b.close()
        b = broker()
    with pytest.raises(SourceUnavailable, match="az login"):
        b.get("foundry")

    az("login", "--user", "bob@tokend.test")  # type: ignore[operator]
    if shared_cache:
        b.close()
        b = broker()
    assert token(b).startswith("az-bob-")
    b.close()
