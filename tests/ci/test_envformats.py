"""``tokend env --format shell|dotenv|github|gitlab``: the exact text of each."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tokend.ci import envformats
from tokend.ci.inject import Var
from tokend.core.errors import UsageError

FOUND = [
    Var("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE0001", True),
    Var("AWS_SECRET_ACCESS_KEY", "s3cr3t/key+va'lue$x", True),
    Var("AWS_CREDENTIAL_EXPIRATION", "2026-11-24T13:00:00Z", False),
]


def test_shell() -> None:
    assert envformats.shell(FOUND) == (
        "export AWS_ACCESS_KEY_ID=ASIAEXAMPLE0001\n"
        "export AWS_SECRET_ACCESS_KEY='s3cr3t/key+va'\"'\"'lue$x'\n"
        "export AWS_CREDENTIAL_EXPIRATION=2026-11-24T13:00:00Z\n"
    )


def test_dotenv_quotes_only_when_needed() -> None:
    found = [*FOUND, Var("PEM", 'a"b\\c\nd', True)]
    assert envformats.dotenv(found) == (
        "AWS_ACCESS_KEY_ID=ASIAEXAMPLE0001\n"
        'AWS_SECRET_ACCESS_KEY="s3cr3t/key+va\'lue\\$x"\n'
        "AWS_CREDENTIAL_EXPIRATION=2026-11-24T13:00:00Z\n"
        'PEM="a\\"b\\\\c\\nd"\n'
    )


def test_github_masks_every_secret_first_and_writes_heredoc_blocks(tmp_path: Path) -> None:
    env_file = tmp_path / "github_env"
    env_file.write_text("EARLIER=1\n")
    masks, path = envformats.github(FOUND, {"GITHUB_ENV": str(env_file)})
    assert masks == "::add-mask::ASIAEXAMPLE0001\n::add-mask::s3cr3t/key+va'lue$x\n"
    counter = itertools.count()
    block = envformats.github_env_block(FOUND, lambda: f"ghadelimiter_{next(counter)}")
    envformats.append(path, block)
    assert env_file.read_bytes() == (
        b"EARLIER=1\n"
        b"AWS_ACCESS_KEY_ID<<ghadelimiter_0\nASIAEXAMPLE0001\nghadelimiter_0\n"
        b"AWS_SECRET_ACCESS_KEY<<ghadelimiter_1\ns3cr3t/key+va'lue$x\nghadelimiter_1\n"
        b"AWS_CREDENTIAL_EXPIRATION<<ghadelimiter_2\n2026-11-24T13:00:00Z\nghadelimiter_2\n"
    )


def test_a_delimiter_found_in_the_value_is_replaced() -> None:
    tries = iter(["ghadelimiter_X", "ghadelimiter_Y"])
    block = envformats.github_env_block([Var("V", "has ghadelimiter_X inside", True)], lambda: next(tries))
    assert block == "V<<ghadelimiter_Y\nhas ghadelimiter_X inside\nghadelimiter_Y\n"


def test_default_delimiters_are_random() -> None:
    one = envformats.github_env_block([Var("V", "value-123456", True)])
    two = envformats.github_env_block([Var("V", "value-123456", True)])
    assert one != two and one.startswith("V<<ghadelimiter_")


def test_command_data_is_escaped_like_actions_core() -> None:
    assert envformats.escape_command_data("50%off\r\n") == "50%25off%0D%0A"
    assert envformats.github_masks([Var("A", "p%0Aq-secret", True)]) == "::add-mask::p%250Aq-secret\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("line1\nline2", "several lines"),
        ("abc", "3-character value is too short"),
        (" padded-secret", "white space"),
    ],
)
def test_values_github_cannot_mask_are_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        envformats.github([Var("TOKEN", value, True)], {"GITHUB_ENV": "/dev/null"})
    assert err.value.message.startswith("TOKEN: ")


def test_short_non_secret_values_are_fine() -> None:
    envformats.check_maskable([Var("N", "1", False)])


def test_missing_github_env_names_the_variable() -> None:
    with pytest.raises(UsageError, match="the CI variable GITHUB_ENV is not set"):
        envformats.github(FOUND, {})
