"""CI detection: with ``CI=true`` nobody is at the keyboard.

Under CI tokend goes daemonless (``TOKEND_NO_DAEMON`` decides when it is set),
never touches the OS keychain, never prompts (``tokend login`` exits 4) and
sends no desktop notifications. GitHub Actions, GitLab CI, CircleCI, Travis,
Buildkite and most others set ``CI=true``.

The rules live with the fast path (``tokend.client.fastpath``), which must
decide without importing anything heavy; these take a mapping instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tokend.client import fastpath

TRUTHY = frozenset(fastpath.TRUTHY)


def active(environ: Mapping[str, str] = os.environ) -> bool:
    """True when this runs in a CI job (``CI=true``)."""
    return fastpath.in_ci(environ.get)


def daemonless(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to skip the daemon: ``TOKEND_NO_DAEMON`` when set, else whether this is CI."""
    return fastpath.no_daemon(environ.get)
