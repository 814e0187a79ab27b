"""Editing tokend's own config file (``tokend setup``, ``tokend integrate git``).

tomlkit keeps the user's comments, order and layout; the new text is checked
with ``tokend.core.config.parse`` before it atomically replaces the file (mode
0600: the config may run commands, and ``tokend`` refuses one others can write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items

from tokend.core import atomicfile, config
from tokend.core.errors import ConfigError


def read(path: Path) -> tomlkit.TOMLDocument:
    """The config at ``path`` as an editable document (empty when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def table(parent: Any, key: str, *, super_table: bool = False) -> Any:
    """``parent[key]`` as a table, made when missing."""
    existing = parent.get(key)
    if isinstance(existing, (tomlkit.items.Table, tomlkit.items.InlineTable)):
        return existing
    if existing is not None:
        raise ConfigError(f"{key} is not a table")
    parent[key] = tomlkit.table(is_super_table=super_table or None)
    return parent[key]


def add_profile(
    doc: tomlkit.TOMLDocument, name: str, settings: Mapping[str, Any], comments: Sequence[str] = ()
) -> bool:
    """Add ``[profiles.NAME]`` unless a profile of that name exists; True when added."""
    profiles = table(doc, "profiles", super_table=True)
    if name in profiles:
        return False
    body = tomlkit.table()
    for line in comments:
        body.add(tomlkit.comment(line))
    for key, value in settings.items():
        body[key] = value
    profiles[name] = body
    return True


def set_host(doc: tomlkit.TOMLDocument, host: str, profile: str) -> bool:
    """Route ``host`` to ``profile`` in ``[hosts]``; True when that changed anything."""
    hosts = table(doc, "hosts")
    current = hosts.get(host)
    tables = (tomlkit.items.Table, tomlkit.items.InlineTable)
    if current == profile or (isinstance(current, tables) and current.get("profile") == profile):
        return False
    if isinstance(current, tables):
        current["profile"] = profile  # keeps its username
    else:
        hosts[host] = profile
    return True


def render(doc: tomlkit.TOMLDocument, path: Path) -> str:
    """The document as text, validated as a tokend config (ConfigError says what is wrong)."""
    text = tomlkit.dumps(doc)
    config.parse(text, path)
    return text


def write(path: Path, text: str) -> None:
    """Replace ``path`` atomically; 0600 unless the file is already stricter."""
    # a symlinked config (dotfiles) stays a symlink; only the owner's bits are kept
    atomicfile.write_text(path, text, keep_mask=0o700, prefix=".config.toml.")
