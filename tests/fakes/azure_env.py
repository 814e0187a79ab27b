"""pytest fixtures shared by the azure tests: an isolated environment, the test CA and fakes.

Import the fixtures you use into the test module (``from tests.fakes.azure_env import …``).
Every test gets its own HOME (azure-identity writes ``~/.IdentityService``), config
dir, Azure CLI dir and REQUESTS_CA_BUNDLE (the host sets one globally).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.entra import FakeEntra, FakeManagedIdentity, TestCA, install_fake_az

#: Environment variables azure-identity, MSAL or requests read: none may leak in from the host.
AZURE_VARS = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_REGIONAL_AUTHORITY_NAME",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_CONFIG_DIR",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "BROWSER",
)

#: Also cleared for in-process tests (the integration sandbox sets its own).
HOST_VARS = ("DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME")


@dataclass
class AzureEnv:
    root: Path
    home: Path
    config_home: Path
    azure_dir: Path
    bin_dir: Path
    ca: TestCA

    def install_az(self) -> Path:
        return install_fake_az(self.bin_dir, sys.executable)


@pytest.fixture(scope="session")
def test_ca() -> Iterator[TestCA]:
    directory = Path(tempfile.mkdtemp(prefix="td-ca", dir="/tmp"))
    try:
        yield TestCA(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, test_ca: TestCA) -> Iterator[AzureEnv]:
    root = Path(tempfile.mkdtemp(prefix="td", dir="/tmp"))
    env = AzureEnv(
        root=root,
        home=root / "h",
        config_home=root / "c",
        azure_dir=root / "h" / ".azure",
        bin_dir=root / "bin",
        ca=test_ca,
    )
    for d in (env.home, env.config_home, env.bin_dir):
        d.mkdir(mode=0o700)
    for var in AZURE_VARS + HOST_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(env.home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.config_home))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(test_ca.ca_path))
    # A real az, pwsh or azd on the host must not answer for the fakes.
    monkeypatch.setenv("PATH", os.pathsep.join([str(env.bin_dir), str(Path(sys.executable).parent)]))
    try:
        yield env
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def entra(test_ca: TestCA) -> Iterator[FakeEntra]:
    with FakeEntra(test_ca) as fake:
        yield fake


@pytest.fixture
def managed_identity() -> Iterator[FakeManagedIdentity]:
    with FakeManagedIdentity() as fake:
        yield fake
