"""What ``tokend setup`` proposes, and the read-only helpers each provider's detection shares.

Each provider package has a ``detect`` module beside its source that reads
that provider's own files (never the network, never a command) and proposes
tokend profiles; ``tokend.integrations.detect`` runs them all.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Proposal:
    name: str
    settings: dict[str, Any]
    comments: tuple[str, ...] = ()
    summary: str = ""
    needs_login: bool = False  # a person signs in next: tokend login NAME
    login_group: str | None = None  # proposals sharing one sign-in (an SSO session)


@dataclass(frozen=True)
class Offer:
    consumer: str
    profile: str
    why: str


@dataclass
class Findings:
    proposals: list[Proposal] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def profile_name(text: str) -> str:
    """A valid tokend profile name made from ``text``."""
    name = re.sub(r"[^A-Za-z0-9_.@-]+", "-", text).strip("-._@") or "profile"
    return name[:64]


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as f:  # the Azure CLI writes a BOM
            return json.load(f)
    except (OSError, ValueError):
        return None


def ini(path: str) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return parser
