"""``source = "command"``: run an existing (slow) helper and cache what it prints.

stdout is either the raw token or JSON with ``token``/``access_token`` and
``expires_at`` (RFC 3339 or epoch seconds) or ``expires_in``; without an
expiry the output lives ``ttl``. The whole process group is killed on timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import SourceError, SourceUnavailable
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.children import Children

MAX_OUTPUT = 1 << 20


class CommandSource(BaseSource):
    name = "command"
    options: ClassVar[dict[str, Option]] = {
        "command": Option(
            "strlist",
            required=True,
            config_relative=True,
            help="argv of the command, no shell (./x or bin/x: next to the config file; a bare name: PATH)",
        ),
        "ttl": Option(
            "duration", default=3000.0, help="life of output that carries no expiry", lifetime=True
        ),
        "env": Option("table", help="extra environment variables for the command"),
        "cwd": Option("str", help="working directory"),
    }

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        super().__init__(profile, options, clock=clock)
        self._children = Children()

    def close(self) -> None:
        """Kill the process groups of commands still running (daemon shutdown)."""
        self._children.close()

    def fetch(self, request: FetchRequest) -> Credential:
        argv = list(self.settings["command"])
        env = dict(os.environ, **(self.settings["env"] or {}))
        cwd = os.path.expanduser(self.settings["cwd"]) if self.settings["cwd"] else None
        try:
            status, out, err = self._children.run(
                argv, timeout=request.timeout, what=argv[0], profile=self.profile, env=env, cwd=cwd
            )
        except FileNotFoundError:
            raise SourceUnavailable(f"command not found: {argv[0]}", profile=self.profile) from None
        except OSError as e:
            raise SourceError(f"cannot run {argv[0]}: {e.strerror}", profile=self.profile) from None
        if status != 0:
            how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
            detail = _last_line(err)
            raise SourceError(
                f"{argv[0]} failed ({how})" + (f": {detail}" if detail else ""), profile=self.profile
            )
        return self._parse(out[:MAX_OUTPUT])

    def _parse(self, out: bytes) -> Credential:
        try:
            text = out.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SourceError("command output is not UTF-8", profile=self.profile) from None
        if not text:
            raise SourceError("command printed nothing", profile=self.profile)
        now = self.clock()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                raise SourceError("command printed malformed JSON", profile=self.profile) from None
            return self._from_json(doc, now)
        if "\n" in text:
            raise SourceError(
                "command printed several lines; expected one token or JSON", profile=self.profile
            )
        return Credential.bearer(text, expires_at=now + self.settings["ttl"], issued_at=now, source=self.name)

    def _from_json(self, doc: dict[str, Any], now: float) -> Credential:
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise SourceError('command JSON has no "token" or "access_token" string', profile=self.profile)
        expires_at: float | None
        if doc.get("expires_at") is not None:
            expires_at = _timestamp(doc["expires_at"])
            if expires_at is None:
                raise SourceError(
                    'command JSON "expires_at" is neither RFC 3339 nor epoch seconds', profile=self.profile
                )
        elif isinstance(doc.get("expires_in"), (int, float)):
            expires_at = now + float(doc["expires_in"])
        else:
            expires_at = now + self.settings["ttl"]
        return Credential.bearer(token, expires_at=expires_at, issued_at=now, source=self.name)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.timestamp()
    return None


def _last_line(err: bytes) -> str:
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
