"""``tokend integrate claude PROFILE``: Claude Code's ``apiKeyHelper`` runs tokend-print.

Sets ``apiKeyHelper`` in ``$CLAUDE_CONFIG_DIR/settings.json`` (default
``~/.claude/settings.json``), keeping every other key as it was. Claude Code
runs the helper with /bin/sh and sends what it prints as ``X-Api-Key`` and
``Authorization: Bearer``; it keeps the value 5 minutes
(``CLAUDE_CODE_API_KEY_HELPER_TTL_MS``) or until a 401, so the helper asks for
a credential with at least 10 minutes of life left. After a 401 Claude Code
runs the helper again and cannot say why: ``--refresh-on-repeat`` makes the
daemon hand that second run a new credential (tokend/daemon/repeat.py, which
looks past the ``sh`` Claude Code starts it with).
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from tokend.core import atomicfile
from tokend.core.errors import ConfigError
from tokend.integrations import read_config

KEY = "apiKeyHelper"
MIN_TTL = "10m"
REPEAT_FLAG = "--refresh-on-repeat"


def settings_path() -> str:
    base = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")
    return os.path.join(base, "settings.json")


def command(profile: str, helper: str) -> str:
    return f"{shlex.quote(helper)} {shlex.quote(profile)} --min-ttl {MIN_TTL} {REPEAT_FLAG}"


def load_settings(text: str, where: str) -> dict[str, Any]:
    """Claude Code's settings JSON as a dict (empty text: none); ConfigError naming ``where``."""
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{where}: not valid JSON ({e}); fix it, then run this again") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    return doc


def render(text: str, profile: str, helper: str, *, where: str = "settings.json") -> str:
    """``text`` (Claude Code settings JSON) with ``apiKeyHelper`` pointing at tokend."""
    doc = load_settings(text, where)
    doc[KEY] = command(profile, helper)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def apply(profile: str, helper: str, *, dry_run: bool) -> str:
    path = settings_path()
    before = read_config(path, "Claude Code's settings")
    after = render(before, profile, helper, where=path)
    line = f'"{KEY}": {json.dumps(command(profile, helper))}'
    if dry_run:
        return f"# {path} would get\n{line}"
    if after == before:
        return f"{path}: {KEY} already runs tokend-print {profile}"
    _write(path, after)
    return f"{path}: {KEY} now runs {helper} {profile}; start claude to use it"


def _write(path: str, text: str) -> None:
    """Atomically, keeping the file's mode (0600 for a new file)."""
    atomicfile.write_text(path, text, prefix=".settings.json.")
