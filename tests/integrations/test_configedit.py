"""Editing tokend's own config: comments kept, validated before writing, atomic, 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tokend.core import config
from tokend.core.errors import ConfigError
from tokend.integrations import configedit

USER = """\
# my tokend config
[defaults]
min_ttl = "10m"   # keep me

[profiles.gh]
# the GitHub App token
source = "demo"

[hosts]
"ghcr.io" = { profile = "gh", username = "octocat" }
"""


def test_add_profile_and_host_keep_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(USER)
    os.chmod(path, 0o600)
    doc = configedit.read(path)
    assert configedit.add_profile(doc, "vertex", {"source": "google"}, ["found by tokend setup"])
    assert not configedit.add_profile(doc, "gh", {"source": "env", "var": "X"})  # never over a profile
    assert configedit.set_host(doc, "github.com", "gh")
    assert not configedit.set_host(doc, "github.com", "gh")
    assert configedit.set_host(doc, "ghcr.io", "vertex")  # the username stays
    configedit.write(path, configedit.render(doc, path))
    text = path.read_text()
    for line in USER.splitlines():
        if not line.startswith('"ghcr.io"'):
            assert line in text.splitlines(), line
    assert '"ghcr.io" = { profile = "vertex", username = "octocat" }' in text
    assert '[profiles.vertex]\n# found by tokend setup\nsource = "google"\n' in text
    cfg = config.load(path)
    assert cfg.hosts["github.com"].profile == "gh" and cfg.hosts["ghcr.io"].username == "octocat"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_invalid_result_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(USER)
    doc = configedit.read(path)
    configedit.set_host(doc, "github.com", "missing")
    with pytest.raises(ConfigError, match="no profile named 'missing'"):
        configedit.render(doc, path)
    assert path.read_text() == USER


def test_new_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tokend" / "config.toml"
    doc = configedit.read(path)
    configedit.add_profile(doc, "d", {"source": "demo"})
    configedit.write(path, configedit.render(doc, path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "tokend.toml"
    real.parent.mkdir()
    real.write_text(USER)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    doc = configedit.read(link)
    configedit.set_host(doc, "github.com", "gh")
    configedit.write(link, configedit.render(doc, link))
    assert link.is_symlink() and '"github.com" = "gh"' in real.read_text()


def test_unparsable_config_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[profiles\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        configedit.read(path)
