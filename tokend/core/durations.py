"""Duration strings as the config and the CLI take them: "90s", "5m", "1h30m", "12h"."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

#: No duration tokend takes (min_ttl, timeouts, intervals, lifetimes) is longer:
#: a bigger number is a typo or an attack on a timer.
MAX_DURATION = 30 * 86400.0


def parse_duration(text: str) -> float:
    """Seconds in ``text``, at most ``MAX_DURATION``; raises ValueError with what was expected."""
    s = text.strip().lower()
    if not s:
        raise ValueError('expected a duration such as "90s", "5m" or "12h", got an empty string')
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return _bounded(float(s), text)  # bare numbers are seconds
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f'expected a duration such as "90s", "5m" or "12h", got {_short(text)!r}')
    return _bounded(total, text)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _bounded(seconds: float, text: str) -> float:
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"{_short(text)!r} is longer than the {format_duration(MAX_DURATION)} maximum")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form: 0s, 42s, 5m03s, 2h05m, 3d04h."""
    if not math.isfinite(seconds):
        return str(seconds)
    neg = seconds < 0
    s = int(abs(seconds))
    if s < 60:
        out = f"{s}s"
    elif s < 3600:
        out = f"{s // 60}m{s % 60:02d}s"
    elif s < 86400:
        out = f"{s // 3600}h{s % 3600 // 60:02d}m"
    else:
        out = f"{s // 86400}d{s % 86400 // 3600:02d}h"
    return "-" + out if neg else out
