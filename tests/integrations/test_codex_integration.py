"""``tokend integrate codex PROFILE``: the provider block, written without disturbing the rest."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
import tomlkit
from click.testing import CliRunner

from tokend.cli import cli
from tokend.core.errors import ConfigError
from tokend.integrations import codex

HELPER = "/opt/tokend/bin/tokend-print"

USER_CONFIG = """\
# my Codex settings
model = "o4-mini"   # keep this comment
approval_policy = "on-request"

[model_providers.ollama]
name = "Ollama"
base_url = "http://localhost:11434/v1"

[model_providers.vertex]
# I filled this in myself
base_url = "https://us-central1-aiplatform.googleapis.com/v1/projects/acme/locations/us-central1/endpoints/openapi"
env_key = "OLD_TOKEN"

[mcp_servers.docs]
command = "docs-mcp"
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "codex-home"
    monkeypatch.setenv("CODEX_HOME", str(home))
    cfg = tmp_path / "tokend.toml"
    cfg.write_text(
        '[profiles.vertex]\nsource = "google"\nquota_project = "billing-proj"\n\n'
        '[profiles.k]\nsource = "keyring"\n'
    )
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    return home


def test_fresh_config_gets_the_exact_provider_block() -> None:
    text = codex.render("", "vertex", HELPER, source="google")
    assert text == textwrap.dedent(
        f"""\
        [model_providers.vertex]
        name = "Vertex AI (tokend)"
        base_url = "{codex.VERTEX_BASE_URL}"
        wire_api = "responses"

        [model_providers.vertex.auth]
        command = "{HELPER}"
        args = ["vertex", "--refresh-on-repeat"]
        """
    )


def test_the_rest_of_the_file_is_kept_byte_for_byte() -> None:
    text = codex.render(USER_CONFIG, "vertex", HELPER, source="google")
    # everything outside the vertex provider survives, comments and all
    for line in USER_CONFIG.splitlines():
        if line != 'env_key = "OLD_TOKEN"':
            assert line in text.splitlines(), line
    doc = tomlkit.parse(text)
    vertex = doc["model_providers"]["vertex"]  # type: ignore[index]
    assert vertex["base_url"].startswith("https://us-central1-aiplatform")  # the user's, kept
    assert "env_key" not in vertex  # would compete with the auth command
    assert vertex["auth"]["command"] == HELPER
    assert list(vertex["auth"]["args"]) == ["vertex", "--refresh-on-repeat"]
    assert doc["model"] == "o4-mini" and doc["model_providers"]["ollama"]["name"] == "Ollama"  # type: ignore[index]
    assert codex.render(text, "vertex", HELPER, source="google") == text  # idempotent


def test_helper_path_is_rewritten_on_reinstall() -> None:
    first = codex.render("", "vertex", "/old/tokend-print", source="google")
    second = codex.render(first, "vertex", HELPER, source="google")
    assert f'command = "{HELPER}"' in second and "/old/" not in second


def test_quota_project_becomes_a_header() -> None:
    text = codex.render("", "vertex", HELPER, source="google", quota_project="billing-proj")
    provider = tomlkit.parse(text)["model_providers"]["vertex"]  # type: ignore[index]
    assert provider["http_headers"] == {"x-goog-user-project": "billing-proj"}


def test_non_google_profiles_get_a_generic_placeholder() -> None:
    text = codex.render("", "k", HELPER, source="keyring")
    assert codex.OTHER_BASE_URL in text and 'name = "k (tokend)"' in text


def test_a_model_providers_key_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="model_providers is not a table"):
        codex.render('model_providers = "x"\n', "vertex", HELPER)


def test_apply_writes_into_codex_home_and_keeps_the_mode(env: Path) -> None:
    env.mkdir()
    path = env / "config.toml"
    path.write_text(USER_CONFIG)
    os.chmod(path, 0o640)
    message = codex.apply("vertex", HELPER, dry_run=False)
    assert 'model_provider="vertex"' in message
    text = path.read_text()
    assert "x-goog-user-project" in text and "# keep this comment" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_apply_creates_a_private_file(env: Path) -> None:
    message = codex.apply("vertex", HELPER, dry_run=False)
    path = env / "config.toml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "placeholder" in message  # the user still has to set base_url


def test_dry_run_shows_a_diff_and_writes_nothing(env: Path) -> None:
    out = codex.apply("vertex", HELPER, dry_run=True)
    assert out.startswith("---") and "+[model_providers.vertex.auth]" in out
    assert not (env / "config.toml").exists()


def test_cli_registers_codex(env: Path) -> None:
    result = CliRunner().invoke(cli, ["integrate", "codex", "vertex", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "+[model_providers.vertex.auth]" in result.output
    assert "--refresh-on-repeat" in result.output


# -- Vertex AI: project and location ------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "host"),
    [("global", "aiplatform.googleapis.com"), ("europe-west4", "europe-west4-aiplatform.googleapis.com")],
)
def test_vertex_location_gives_the_right_host(env: Path, location: str, host: str) -> None:
    result = CliRunner().invoke(
        cli, ["integrate", "codex", "vertex", "--location", location, "--project", "acme"]
    )
    assert result.exit_code == 0, result.output
    doc = tomlkit.parse((env / "config.toml").read_text())
    url = doc["model_providers"]["vertex"]["base_url"]
    assert url == f"https://{host}/v1/projects/acme/locations/{location}/endpoints/openapi"
    assert "placeholder" not in result.output


def test_vertex_project_defaults_to_the_quota_project_and_replaces_a_placeholder(env: Path) -> None:
    assert CliRunner().invoke(cli, ["integrate", "codex", "vertex"]).exit_code == 0
    assert "LOCATION" in (env / "config.toml").read_text(), "no location given: the placeholder stays"
    result = CliRunner().invoke(cli, ["integrate", "codex", "vertex", "--location", "global"])
    assert result.exit_code == 0, result.output
    doc = tomlkit.parse((env / "config.toml").read_text())
    assert doc["model_providers"]["vertex"]["base_url"] == (
        "https://aiplatform.googleapis.com/v1/projects/billing-proj/locations/global/endpoints/openapi"
    )


def test_vertex_options_need_a_google_profile_and_a_valid_location(env: Path) -> None:
    result = CliRunner().invoke(cli, ["integrate", "codex", "k", "--location", "global"])
    assert result.exit_code != 0 and "google" in str(result.exception or result.output)
    result = CliRunner().invoke(cli, ["integrate", "codex", "vertex", "--location", "us central"])
    assert result.exit_code != 0 and "location" in str(result.exception or result.output)
    result = CliRunner().invoke(cli, ["integrate", "claude", "vertex", "--location", "global"])
    assert result.exit_code != 0 and "codex" in result.output
    assert not (env / "config.toml").exists()
