"""``tokend integrate codex PROFILE`` for an azure profile: an Azure OpenAI provider block."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tokend.core import config
from tokend.integrations import codex

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

CONFIG = """\
[profiles.foundry]
source = "azure"
credential = "cli"
scopes = ["https://cognitiveservices.azure.com/.default"]
"""


@pytest.fixture
def codex_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "tokend.toml"
    cfg.write_text(CONFIG)
    cfg.chmod(0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    return tmp_path / "codex"


def test_azure_profile_gets_an_azure_openai_provider(codex_home: Path) -> None:
    assert config.load().profile("foundry").source == "azure"
    message = codex.apply("foundry", "/opt/tokend/bin/tokend-print", dry_run=False)
    path = codex_home / "config.toml"
    doc = tomllib.loads(path.read_text())
    provider = doc["model_providers"]["foundry"]
    assert provider["name"] == "Azure OpenAI (tokend)"
    assert provider["base_url"] == "https://YOUR-RESOURCE.openai.azure.com/openai/v1"
    assert provider["wire_api"] == "responses"
    assert provider["auth"]["command"] == "/opt/tokend/bin/tokend-print"
    assert provider["auth"]["args"][0] == "foundry"
    assert "env_key" not in provider and "query_params" not in provider  # v1 API: no api-version
    assert "edit base_url" in message
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_users_endpoint_is_kept(codex_home: Path) -> None:
    codex_home.mkdir()
    endpoint = "https://my-foundry.services.ai.azure.com/openai/v1"
    (codex_home / "config.toml").write_text(
        f'model = "gpt-5"\n\n[model_providers.foundry]\nbase_url = "{endpoint}"\n'
        'env_key = "AZURE_OPENAI_API_KEY"\n'
    )
    message = codex.apply("foundry", "/opt/tokend/bin/tokend-print", dry_run=False)
    doc = tomllib.loads((codex_home / "config.toml").read_text())
    provider = doc["model_providers"]["foundry"]
    assert doc["model"] == "gpt-5"
    assert provider["base_url"] == endpoint
    assert "env_key" not in provider  # the key would compete with the token
    assert "edit base_url" not in message
