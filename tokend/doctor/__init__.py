"""``tokend doctor``: every check a new user would otherwise do by hand, one line each.

A check is *ok* (✓), *failed* (✗, with the command or edit that fixes it) or
*info* (-: nothing wrong, nothing to verify, e.g. no daemon running yet, which
tokend-print starts on demand). Only failed checks make the exit status 1.
Checks never print a credential: a test fetch reports only that one came back
and how long it lives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["ok", "failed", "info"]
MARKS: dict[Status, str] = {"ok": "✓", "failed": "✗", "info": "-"}


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, what was found, and (when failed) how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{MARKS[self.status]} {self.name}: {self.detail}"
        return text + (f" — fix: {self.fix}" if self.fix else "")


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def info(name: str, detail: str) -> Check:
    return Check(name, "info", detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, "failed", detail, fix)


def all_passed(checks: Iterable[Check]) -> bool:
    return all(c.status != "failed" for c in checks)


def render_text(checks: Iterable[Check]) -> str:
    return "\n".join(c.line() for c in checks)


def render_json(checks: list[Check]) -> str:
    return json.dumps({"ok": all_passed(checks), "checks": [asdict(c) for c in checks]}, indent=2)
