"""The one error type: codes, exit statuses, one-line messages, secret scrubbing."""

from __future__ import annotations

import secrets
import threading

import pytest

from tokend.core import errors
from tokend.core.errors import (
    REDACTOR,
    ConfigError,
    DaemonUnreachable,
    LoginRequired,
    Redactor,
    Relayed,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
    TokendError,
    UnknownProfile,
    UsageError,
    scrub,
)


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (TokendError, 1, "failed"),
        (UsageError, 2, "usage"),
        (ConfigError, 2, "config"),
        (UnknownProfile, 2, "unknown-profile"),
        (SourceUnavailable, 1, "unavailable"),
        (SourceError, 1, "source"),
        (SourceTimeout, 1, "timeout"),
        (LoginRequired, 4, "login-required"),
        (DaemonUnreachable, 3, "no-daemon"),
    ],
)
def test_exit_status_and_code(cls: type[TokendError], status: int, code: str) -> None:
    err = cls("it broke")
    assert isinstance(err, TokendError)
    assert err.exit_status == status
    assert err.code == code
    assert str(err) == "it broke"


def test_exit_statuses_follow_the_design() -> None:
    assert (errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE) == (0, 1, 2)
    assert (errors.EXIT_NO_DAEMON, errors.EXIT_LOGIN) == (3, 4)


def test_hierarchy() -> None:
    assert issubclass(ConfigError, UsageError)
    assert issubclass(UnknownProfile, UsageError)
    assert issubclass(SourceTimeout, SourceError)
    # "not here" and "failed" stay distinct so a chain can move on from one only
    assert not issubclass(SourceUnavailable, SourceError)
    assert not issubclass(SourceError, SourceUnavailable)
    assert not issubclass(LoginRequired, SourceError)


def test_message_is_one_line() -> None:
    err = TokendError("first line\nsecond\tline   with  spaces\r\n")
    assert err.message == "first line second line with spaces"
    assert "\n" not in err.line()


def test_line_names_the_profile() -> None:
    assert SourceError("upstream said 503", profile="vertex").line() == "tokend: vertex: upstream said 503"
    assert UsageError("bad flag").line() == "tokend: bad flag"


def test_profile_can_be_filled_in_later() -> None:
    err = SourceError("boom")
    err.profile = "bedrock"
    assert err.line() == "tokend: bedrock: boom"


def test_source_error_retryable_flag() -> None:
    assert SourceError("x").retryable is True
    assert SourceError("x", retryable=False).retryable is False
    assert SourceTimeout("x").retryable is True


def test_relayed_keeps_the_daemon_line_and_status() -> None:
    err = Relayed("tokend: vertex: login required", 4)
    assert err.exit_status == 4
    assert err.line() == "tokend: vertex: login required"
    assert Relayed("no prefix here", 1).line() == "tokend: no prefix here"


def test_redactor_masks_values_it_was_given() -> None:
    r = Redactor()
    r.add(["sk-live-abcdef123456", "s3cr3t-value"])
    assert r("Authorization: Bearer sk-live-abcdef123456 failed") == "Authorization: Bearer *** failed"
    assert r("two: s3cr3t-value and s3cr3t-value") == "two: *** and ***"
    assert r("nothing secret here") == "nothing secret here"


def test_redactor_ignores_short_values() -> None:
    r = Redactor()
    r.add(["abc", "12345", ""])
    assert r("abc 12345 abcdef") == "abc 12345 abcdef"


def test_redactor_masks_longest_value_first() -> None:
    r = Redactor()
    r.add(["secret", "secret-with-suffix"])
    # a shorter value inside a longer one must not leave the suffix behind
    assert r("got secret-with-suffix") == "got ***"


def test_redactor_discard() -> None:
    r = Redactor()
    r.add(["rotated-away-value"])
    r.discard(["rotated-away-value"])
    assert r("rotated-away-value") == "rotated-away-value"


def test_redactor_is_thread_safe() -> None:
    r = Redactor()
    values = [f"value-{i:06d}" for i in range(400)]

    def add(chunk: list[str]) -> None:
        for v in chunk:
            r.add([v])
            r("text with " + v)

    threads = [threading.Thread(target=add, args=(values[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r(" ".join(values)) == " ".join(["***"] * len(values))


def test_errors_are_scrubbed_with_the_process_redactor() -> None:
    served = "tok-" + secrets.token_hex(12)
    REDACTOR.add([served])
    try:
        err = SourceError(f"upstream rejected {served}: 401", profile="p")
        assert served not in str(err)
        assert served not in err.line()
        assert err.message == "upstream rejected ***: 401"
        assert scrub(f"log line {served}") == "log line ***"
    finally:
        REDACTOR.discard([served])
    assert scrub(served) == served
