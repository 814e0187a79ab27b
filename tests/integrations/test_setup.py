"""``tokend setup`` in-process: the interactive questions, and detection of damaged or absent files.

The real-process runs against realistic HOMEs are in tests/integration/test_setup.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokend.cli import cli
from tokend.cli import setup as setup_cli
from tokend.core import config
from tokend.integrations import detect


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "CLOUDSDK_CONFIG",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_CONFIG_DIR",
        "CODEX_HOME",
        "CLAUDE_CONFIG_DIR",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TOKEND_CONFIG", str(tmp_path / "tokend.toml"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    return tmp_path


def put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_interactive_asks_per_profile_and_per_integration(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setup_cli, "_terminal", lambda: True)
    put(home / ".aws" / "config", "[profile a]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = b\n"
        "[profile b]\ncredential_process = /usr/bin/get-creds\n")
    put(home / "codex" / "config.toml", "# mine\n")
    azure = {"subscriptions": [{"user": {"name": "u@x"}, "tenantId": "t", "name": "s", "isDefault": True}]}
    put(home / ".azure" / "azureProfile.json", json.dumps(azure))
    # aws-a yes, aws-b no, azure yes; then the integrations it offers: codex yes, aws no.
    result = CliRunner().invoke(cli, ["setup"], input="y\nn\ny\ny\nn\n")
    assert result.exit_code == 0, result.output
    assert sorted(config.load().profiles) == ["aws-a", "azure"]
    assert "[model_providers.azure]" in (home / "codex" / "config.toml").read_text()
    assert "run tokend integrate aws aws-a? [y/N]: n" in result.output
    assert "credential_process" in (home / ".aws" / "config").read_text()
    assert "tokend-print" not in (home / ".aws" / "config").read_text()


def test_damaged_files_are_skipped(home: Path) -> None:
    put(home / ".config" / "gcloud" / "application_default_credentials.json", "{not json")
    put(home / ".config" / "gcloud" / "credentials.db", "not a database")
    put(home / ".aws" / "config", "[profile broken\nregion=x\n")
    put(home / ".azure" / "azureProfile.json", '{"subscriptions": "nope"}')
    found = detect.detect(which=lambda name: None)
    assert found.proposals == [] and found.notes == []


def test_nothing_found_writes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect.shutil, "which", lambda name: None)
    result = CliRunner().invoke(cli, ["setup", "--yes"])
    assert result.exit_code == 0, result.output
    assert "found no gcloud, AWS or Azure CLI sign-in" in result.output
    # ... and what to do next: sign in and run it again, or write a profile by hand.
    assert "az login" in result.output and "run tokend setup again" in result.output
    assert f"add a profile to {home / 'tokend.toml'}" in result.output
    assert "tokend secret set NAME" in result.output
    assert not os.path.exists(home / "tokend.toml")


def test_gcloud_account_without_adc_needs_a_login(home: Path) -> None:
    put(home / ".config" / "gcloud" / "active_config", "work")
    put(home / ".config" / "gcloud" / "configurations" / "config_work", "[core]\naccount = me@x.example\n")
    [proposal] = detect.detect(which=lambda name: None).proposals
    assert proposal.name == "google" and proposal.needs_login
    assert proposal.settings == {"source": "google"}


def test_profile_names_are_made_valid() -> None:
    assert detect.profile_name("aws-my profile/x") == "aws-my-profile-x"
    assert detect.profile_name("///") == "profile"
    assert len(detect.profile_name("a" * 100)) == 64
