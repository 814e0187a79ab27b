"""Logging set-up: every record is passed through the redactor first."""

from __future__ import annotations

import logging
import os
import re
import sys

from tokend.core.errors import scrub

#: C0 controls but tab, DEL, C1 controls, and the separators str.splitlines() also
#: breaks on: any of them in a logged field could start a forged log line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
#: The same, except a newline: a traceback's own lines stay lines.
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` on one line: control characters shown as ``\\xNN`` escapes."""
    return _CONTROL.sub(_visible, text)


class RedactingFilter(logging.Filter):
    """Redacts every served secret from a record and escapes its control characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Escaped after formatting, so every field (a profile name, a caller's pid,
        # an upstream's message) is covered, whoever logs it.
        record.msg = escape(scrub(record.getMessage()))
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = _CONTROL_BUT_NEWLINE.sub(_visible, scrub(text))
            record.exc_info = None
        return True


#: sd-daemon(3) priority prefixes: journald reads ``<3>`` as an error and so on.
_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """No timestamp (journald stamps each line); a priority prefix journald understands."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # Each line of a multi-line record becomes its own journal entry.
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines() or [""])


def stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd connected (``JOURNAL_STREAM``).

    The variable is inherited, so it is only believed when it names stderr
    itself (device:inode), as sd_journal_stream_fd(3) recommends.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # journald stamps each line itself; elsewhere we add the time.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter(fmt))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s " + fmt))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
