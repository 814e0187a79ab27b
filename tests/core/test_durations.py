"""Duration strings as config files and the CLI take them."""

from __future__ import annotations

import pytest

from tokend.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("12h", 43200.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("1m30s", 90.0),
        ("1h0m5s", 3605.0),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        ("42", 42.0),
        ("0.25", 0.25),
        (" 5M ", 300.0),
        ("10S", 10.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "5x", "m5", "-5m", "5m5", "1h 30m", "h", "ms", "5 m", "1.m", "five minutes", "5m-", "+5m"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


def test_parse_duration_error_quotes_the_input() -> None:
    with pytest.raises(ValueError, match="'5x'"):
        parse_duration("5x")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (42, "42s"),
        (59.9, "59s"),
        (60, "1m00s"),
        (303, "5m03s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7500, "2h05m"),
        (86399, "23h59m"),
        (3 * 86400 + 4 * 3600 + 59, "3d04h"),
        (-90, "-1m30s"),
        (-5, "-5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["0s", "42s", "5m03s", "2h05m", "3d04h"])
def test_format_then_parse_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
