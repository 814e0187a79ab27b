"""``tokend endpoints env``: the same variables in each shell's syntax."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tokend.cli.endpoints import render, status_lines

SET = {"AWS_CONTAINER_AUTHORIZATION_TOKEN": "a'b$c d", "GCE_METADATA_HOST": "127.0.0.1:4000"}
UNSET = ["AWS_PROFILE", "AWS_ACCESS_KEY_ID"]


def test_shell_format_unsets_then_exports() -> None:
    env = {**os.environ, "AWS_PROFILE": "mine", "AWS_ACCESS_KEY_ID": "AKIA"}
    script = render(SET, UNSET, "shell") + 'printf "%s|%s|%s" "$AWS_CONTAINER_AUTHORIZATION_TOKEN" '
    script += '"${AWS_PROFILE-gone}" "${AWS_ACCESS_KEY_ID-gone}"'
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "a'b$c d|gone|gone"


def test_fish_format() -> None:
    text = render(SET, UNSET, "fish")
    assert text.splitlines()[:2] == ["set -e AWS_PROFILE", "set -e AWS_ACCESS_KEY_ID"]
    assert "set -gx AWS_CONTAINER_AUTHORIZATION_TOKEN 'a\\'b$c d'" in text
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish is not installed (the syntax is checked above)")
    script = text + "printf %s $AWS_CONTAINER_AUTHORIZATION_TOKEN"
    assert subprocess.run([fish, "-c", script], capture_output=True, text=True).stdout == "a'b$c d"


def test_dotenv_format_sets_only() -> None:
    text = render(SET, UNSET, "dotenv")
    assert text == 'AWS_CONTAINER_AUTHORIZATION_TOKEN="a\'b\\$c d"\nGCE_METADATA_HOST=127.0.0.1:4000\n'


def test_status_lines_show_counts_and_errors_never_tokens() -> None:
    lines = status_lines(
        [
            {"cloud": "aws", "profile": "role", "url": "http://127.0.0.1:4000", "requests": 3},
            {
                "cloud": "google",
                "error": "tokend: endpoints.google: port 80 on 127.0.0.1 is in use: not served",
            },
        ]
    )
    assert lines == [
        "endpoint aws (role) http://127.0.0.1:4000, 3 requests",
        "endpoint google: tokend: endpoints.google: port 80 on 127.0.0.1 is in use: not served",
    ]
