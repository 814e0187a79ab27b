"""``tokend integrate claude PROFILE --bedrock | --vertex``: Claude Code's env block and credential export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokend.cli import cli
from tokend.core.errors import ConfigError
from tokend.integrations import claude_modes

HELPER = "/opt/tokend tools/bin/tokend-print"
SETTINGS = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git diff:*)"]},
    "env": {"DISABLE_TELEMETRY": "1", "CLAUDE_CODE_USE_VERTEX": "1", "CLOUD_ML_REGION": "us-east5"},
    "apiKeyHelper": "~/bin/old-helper.sh",
}
CONFIG = """
[profiles.role]
source = "aws"
aws_profile = "base"
region = "eu-west-3"
[profiles.keyless]
source = "aws"
aws_profile = "base"
[profiles.bedrock-token]
source = "aws"
aws_profile = "base"
token = "bedrock"
[profiles.vertex]
source = "google"
credentials_file = "SA"
[profiles.other]
source = "google"
credentials_file = "SA"
[endpoints]
google = "vertex"
ports = { google = 49822 }
"""


def test_render_bedrock_keeps_other_keys_and_drops_vertex() -> None:
    out = json.loads(claude_modes.render_bedrock(json.dumps(SETTINGS), "role", HELPER, "eu-west-3"))
    assert out["env"] == {"DISABLE_TELEMETRY": "1", "CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": "eu-west-3"}
    assert out["awsCredentialExport"] == "'/opt/tokend tools/bin/tokend-print' role --format aws-sts"
    assert {k: v for k, v in out.items() if k not in ("env", "awsCredentialExport")} == {
        k: v for k, v in SETTINGS.items() if k != "env"
    }


def test_render_vertex_sets_the_metadata_host_and_drops_bedrock() -> None:
    bedrock = claude_modes.render_bedrock(json.dumps(SETTINGS), "role", HELPER, "eu-west-3")
    out = json.loads(claude_modes.render_vertex(bedrock, "proj", "global", "127.0.0.1:49822"))
    assert out["env"] == {
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_USE_VERTEX": "1",
        "CLOUD_ML_REGION": "global",
        "ANTHROPIC_VERTEX_PROJECT_ID": "proj",
        "GCE_METADATA_HOST": "127.0.0.1:49822",
    }
    assert "awsCredentialExport" not in out and out["model"] == "opus"


@pytest.mark.parametrize("text", ["{", "[]", '{"env": []}'])
def test_bad_settings_are_one_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        claude_modes.render_bedrock(text, "role", HELPER, "eu-west-3")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    sa = tmp_path / "sa.json"
    sa.write_text(json.dumps({"type": "service_account", "client_email": "v@proj.iam", "project_id": "proj"}))
    cfg = tmp_path / "tokend.toml"
    cfg.write_text(CONFIG.replace('"SA"', json.dumps(str(sa))))
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    return tmp_path / "claude"


def test_cli_bedrock_and_vertex(home: Path) -> None:
    home.mkdir()
    path = home / "settings.json"
    path.write_text(json.dumps(SETTINGS, indent=2))
    r = CliRunner().invoke(cli, ["integrate", "claude", "role", "--bedrock"])
    assert r.exit_code == 0, r.output
    doc = json.loads(path.read_text())
    assert doc["env"]["AWS_REGION"] == "eu-west-3"  # the profile's region
    assert doc["awsCredentialExport"].endswith("tokend-print role --format aws-sts")
    assert os.path.isabs(doc["awsCredentialExport"].split()[0])
    r = CliRunner().invoke(cli, ["integrate", "claude", "vertex", "--vertex", "--location", "us-east5"])
    assert r.exit_code == 0, r.output
    doc = json.loads(path.read_text())
    assert doc["env"]["ANTHROPIC_VERTEX_PROJECT_ID"] == "proj" and doc["env"]["CLOUD_ML_REGION"] == "us-east5"
    assert doc["env"]["GCE_METADATA_HOST"] == "127.0.0.1:49822"
    assert doc["apiKeyHelper"] == SETTINGS["apiKeyHelper"] and doc["permissions"] == SETTINGS["permissions"]
    again = CliRunner().invoke(cli, ["integrate", "claude", "vertex", "--vertex", "--location", "us-east5"])
    assert "already set up" in again.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["bedrock-token", "--bedrock"], "--bedrock: the profile gives"),
        (["vertex", "--bedrock"], "--bedrock: the profile gives source 'google'"),
        (["keyless", "--bedrock"], "give --location REGION"),
        (["role", "--vertex"], "--vertex: the profile gives source 'aws'"),
        (["other", "--vertex"], '[endpoints] google = "other"'),
        (["role", "--vertex", "--bedrock"], "one of them"),
        (["role", "--bedrock", "--location", "EU WEST"], "--location 'EU WEST'"),
    ],
)
def test_cli_refusals_touch_nothing(home: Path, args: list[str], said: str) -> None:
    r = CliRunner().invoke(cli, ["integrate", "claude", *args])
    assert r.exit_code != 0
    assert said in str(r.exception) + r.output, (r.output, r.exception)
    assert not (home / "settings.json").exists()


def test_cli_vertex_flag_is_for_claude_only(home: Path) -> None:
    r = CliRunner().invoke(cli, ["integrate", "codex", "role", "--bedrock"])
    assert r.exit_code != 0 and "for claude only" in r.output
