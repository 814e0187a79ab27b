"""Secret references: env:, file:, keyring:, and the trust a secret file needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokend.core.errors import ConfigError, SourceError, SourceUnavailable
from tokend.sources.refs import check_ref, file_problem, read_ref


def test_only_references_are_accepted_in_the_config() -> None:
    check_ref("env:TOKEN", "token", "p")
    check_ref("file:~/.vault-token", "token", "p")
    check_ref("keyring:svc/user", "token", "p")
    with pytest.raises(ConfigError, match=r"profiles\.p\.token: expected env:VARIABLE"):
        check_ref("s.literal-token", "token", "p")


def test_env_and_file_references(tmp_path: Path) -> None:
    assert read_ref("env:T", "token", environ={"T": " v1 \n"}) == "v1"
    with pytest.raises(SourceUnavailable, match="environment variable T"):
        read_ref("env:T", "token", environ={})
    secret = tmp_path / "secret"
    secret.write_text("v2\n")
    secret.chmod(0o600)
    assert read_ref(f"file:{secret}", "token", environ={}) == "v2"
    with pytest.raises(SourceUnavailable, match="no such file"):
        read_ref(f"file:{tmp_path / 'none'}", "token", environ={})


def test_a_secret_file_others_can_change_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("planted\n")
    secret.chmod(0o620)
    with pytest.raises(
        SourceError, match=r"token\): refusing a secret file writable by group or others"
    ) as e:
        read_ref(f"file:{secret}", "token", environ={})
    assert "planted" not in str(e.value)


def test_who_may_own_a_secret_file(tmp_path: Path) -> None:
    st = os.stat(tmp_path)  # a directory: not a regular file
    assert file_problem(st) == "not a regular file"
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0o644)
    st = os.stat(secret)
    assert file_problem(st, uid=st.st_uid) is None
    # Root's mounted secrets (Kubernetes service-account tokens) are trusted; another user's are not.
    assert file_problem(st, uid=st.st_uid + 1000) == (
        None
        if st.st_uid == 0
        else f"owned by uid {st.st_uid}, not you: another user decides what it holds (use a file you own)"
    )
