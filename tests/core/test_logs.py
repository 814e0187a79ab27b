"""Log records: secrets redacted, control characters escaped so no field can forge a line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from tokend.core.errors import REDACTOR
from tokend.core.logs import RedactingFilter


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tokend.test_logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def test_a_newline_in_a_field_does_not_start_a_line(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    logger.info("%s: asked by %s", "demo", "7\nERROR tokend.daemon: forged\r\x1b[2K")
    expected = "demo: asked by 7\\x0aERROR tokend.daemon: forged\\x0d\\x1b[2K"
    assert out.getvalue() == f"INFO tokend.test_logs: {expected}\n"


def test_every_control_character_but_tab_is_escaped() -> None:
    from tokend.core.logs import escape

    assert escape("a\tb") == "a\tb"
    assert escape("\x00\x7f\x85\u2028\u2029") == "\\x00\\x7f\\x85\\u2028\\u2029"
    for ch in map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]):
        assert len(escape("a" + ch + "b").splitlines()) == 1
    assert escape("héllo → ok") == "héllo → ok"


def test_tracebacks_keep_their_lines_but_nothing_else(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    try:
        raise ValueError("bad\x1b]0;title\x07 value\rX")
    except ValueError:
        logger.exception("failed")
    text = out.getvalue()
    assert text.startswith("ERROR tokend.test_logs: failed\nTraceback (most recent call last):\n")
    assert "ValueError: bad\\x1b]0;title\\x07 value\\x0dX" in text
    assert "\r" not in text and "\x1b" not in text


def test_secrets_are_redacted_before_escaping(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = logged
    secret = "s3cr3t-token-value-0123456789"
    REDACTOR.add([secret])
    try:
        logger.warning("upstream said %s", secret + "\n")
    finally:
        REDACTOR.discard([secret])
    assert secret not in out.getvalue()
    assert out.getvalue().endswith("\\x0a\n")
