"""``tokend integrate git PROFILE --host HOST``: the [hosts] route and git's global config, with real git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokend.cli import cli
from tokend.core import config
from tokend.integrations import git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

CONFIG = """\
# tokend for my laptop
[profiles.gh]
source = "demo"   # stands in for a GitHub App token
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    cfg = tmp_path / "tokend.toml"
    cfg.write_text(CONFIG)
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    bindir = tmp_path / "bin dir"
    bindir.mkdir()
    for name in ("tokend-print", "git-credential-tokend"):
        (bindir / name).write_text("#!/bin/sh\n")
        os.chmod(bindir / name, 0o755)
    monkeypatch.setattr("tokend.cli.integrate.helper_path", lambda: str(bindir / "tokend-print"))
    return tmp_path


def git_config(*args: str) -> list[str]:
    done = subprocess.run(["git", "config", "--global", *args], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()


def test_integrate_git_writes_both_configs(world: Path) -> None:
    (world / "home" / ".gitconfig").write_text("[user]\n\tname = Dev\n[credential]\n\thelper = store\n")
    result = CliRunner().invoke(cli, ["integrate", "git", "gh", "--host", "https://GitHub.com/acme/x.git"])
    assert result.exit_code == 0, result.output
    helper = str(world / "bin dir" / "git-credential-tokend")
    assert git_config("--get-all", "credential.https://github.com.helper") == ["", f"'{helper}'"]
    assert git_config("--get", "user.name") == ["Dev"]
    assert git_config("--get-all", "credential.helper") == ["store"]  # other hosts unchanged
    text = (world / "tokend.toml").read_text()
    assert text.startswith(CONFIG) and '[hosts]\n"github.com" = "gh"\n' in text
    assert config.load().hosts["github.com"].profile == "gh"
    again = CliRunner().invoke(cli, ["integrate", "git", "gh", "--host", "github.com"])
    assert again.exit_code == 0 and "git already asks tokend (gh) for github.com" in again.output
    assert git_config("--get-all", "credential.https://github.com.helper") == ["", f"'{helper}'"]


def test_without_host_uses_the_routes_of_the_profile(world: Path) -> None:
    cfg = world / "tokend.toml"
    cfg.write_text(CONFIG + '[hosts]\n"git.example.com" = "gh"\n"*.example.org" = "gh"\n')
    result = CliRunner().invoke(cli, ["integrate", "git", "gh"])
    assert result.exit_code == 0, result.output
    assert git_config("--get-all", "credential.https://git.example.com.helper")[0] == ""
    assert len(git_config("--get-all", "credential.https://*.example.org.helper")) == 2


def test_errors(world: Path) -> None:
    no_host = CliRunner().invoke(cli, ["integrate", "git", "gh"])
    assert no_host.exit_code != 0 and "give --host" in str(no_host.exception or no_host.output)
    other = CliRunner().invoke(cli, ["integrate", "claude", "gh", "--host", "github.com"])
    assert other.exit_code != 0 and "--host applies to git only" in other.output
    dry = CliRunner().invoke(cli, ["integrate", "git", "gh", "--host", "github.com", "--dry-run"])
    assert dry.exit_code == 0 and dry.output.startswith("# would write:")
    assert git_config("--get-all", "credential.https://github.com.helper") == []
    assert "[hosts]" not in (world / "tokend.toml").read_text()


def test_helper_found_next_to_tokend_print(tmp_path: Path) -> None:
    (tmp_path / "git-credential-tokend").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "git-credential-tokend", 0o755)
    assert git.git_helper(str(tmp_path / "tokend-print")) == str(tmp_path / "git-credential-tokend")
