"""CI detection: with ``CI=true`` nobody is at the keyboard.

Under CI tokend goes daemonless (``TOKEND_NO_DAEMON`` decides when it is set),
never touches the OS keychain, never prompts (``tokend login`` exits 4) and
sends no desktop notifications. GitHub Actions, GitLab CI, CircleCI, Travis,
Buildkite and most others set ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

TRUTHY = frozenset({"1", "true", "yes", "on"})


def active(environ: Mapping[str, str] = os.environ) -> bool:
    """True when this runs in a CI job (``CI=true``)."""
    return environ.get("CI", "").strip().lower() in TRUTHY


def daemonless(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to skip the daemon: ``TOKEND_NO_DAEMON`` when set, else whether this is CI."""
    explicit = environ.get("TOKEND_NO_DAEMON")
    if explicit is not None and explicit.strip():
        return explicit.strip().lower() in TRUTHY
    return active(environ)

