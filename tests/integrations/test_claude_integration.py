"""``tokend integrate claude PROFILE``: apiKeyHelper set, every other setting kept."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokend.cli import cli
from tokend.core.errors import ConfigError
from tokend.integrations import claude

HELPER = "/opt/tokend tools/bin/tokend-print"

SETTINGS = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git diff:*)"], "deny": []},
    "env": {"ANTHROPIC_BASE_URL": "https://gateway.example.com"},
    "apiKeyHelper": "~/bin/old-helper.sh",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    cfg = tmp_path / "tokend.toml"
    cfg.write_text('[profiles.anthropic]\nsource = "keyring"\n')
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    return tmp_path / "claude"


def test_render_keeps_other_keys_and_quotes_the_path() -> None:
    out = json.loads(claude.render(json.dumps(SETTINGS), "anthropic", HELPER))
    helper = "'/opt/tokend tools/bin/tokend-print' anthropic --min-ttl 10m --refresh-on-repeat"
    assert out == {**SETTINGS, "apiKeyHelper": helper}
    assert list(out) == list(SETTINGS)  # order kept


def test_fresh_file_and_bad_json() -> None:
    assert json.loads(claude.render("", "a", "/bin/tokend-print")) == {
        "apiKeyHelper": "/bin/tokend-print a --min-ttl 10m --refresh-on-repeat"
    }
    with pytest.raises(ConfigError, match="not valid JSON"):
        claude.render("{", "a", HELPER)
    with pytest.raises(ConfigError, match="expected a JSON object"):
        claude.render("[]", "a", HELPER)


def test_cli_writes_settings_json(home: Path) -> None:
    home.mkdir()
    path = home / "settings.json"
    path.write_text(json.dumps(SETTINGS, indent=2))
    os.chmod(path, 0o640)
    result = CliRunner().invoke(cli, ["integrate", "claude", "anthropic"])
    assert result.exit_code == 0, result.output
    doc = json.loads(path.read_text())
    assert doc["apiKeyHelper"].endswith("tokend-print anthropic --min-ttl 10m --refresh-on-repeat")
    assert os.path.isabs(doc["apiKeyHelper"].split()[0])
    assert doc["env"] == SETTINGS["env"] and doc["permissions"] == SETTINGS["permissions"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # mode kept
    again = CliRunner().invoke(cli, ["integrate", "claude", "anthropic"])
    assert "already runs tokend-print anthropic" in again.output


def test_new_settings_file_is_private(home: Path) -> None:
    result = CliRunner().invoke(cli, ["integrate", "claude", "anthropic"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(home / "settings.json").st_mode) == 0o600
    dry = CliRunner().invoke(cli, ["integrate", "claude", "anthropic", "--dry-run"])
    assert dry.output.startswith(f"# {home / 'settings.json'} would get\n")
