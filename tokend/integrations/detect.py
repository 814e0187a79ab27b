"""``tokend setup``: what is already on this machine, and the profiles and integrations that would use it.

Reads, never changes: each provider's own detection (``tokend.sources.*.detect``:
gcloud's configuration, the AWS config files, the Azure CLI's profile) and
whether the Codex CLI and Claude Code are set up here. Nothing here touches the
network or runs a command.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from tokend.sources.aws.detect import aws
from tokend.sources.azure.detect import azure
from tokend.sources.google.detect import gcloud
from tokend.sources.setup import Findings, Offer, Proposal, Which, profile_name

__all__ = ["Findings", "Offer", "Proposal", "consumers", "detect", "profile_name"]


def consumers(environ: Mapping[str, str], which: Which, profiles: list[str]) -> list[Offer]:
    """Integrations worth offering; ``profiles`` in order of preference."""
    home = os.path.expanduser("~")
    offers = []
    codex_home = environ.get("CODEX_HOME") or os.path.join(home, ".codex")
    if os.path.isfile(os.path.join(codex_home, "config.toml")) or which("codex"):
        for name in ("google", "azure"):
            if name in profiles:
                why = "the Codex CLI is set up here: a model provider using this profile"
                offers.append(Offer("codex", name, why))
                break
    claude_dir = environ.get("CLAUDE_CONFIG_DIR") or os.path.join(home, ".claude")
    if os.path.isdir(claude_dir) or os.path.isfile(os.path.join(home, ".claude.json")) or which("claude"):
        why = "Claude Code is set up here: apiKeyHelper for a profile serving an API key"
        offers.append(Offer("claude", "PROFILE", why))
    for name in profiles:
        if name.startswith("aws"):
            offers.append(Offer("aws", name, "AWS SDKs and the AWS CLI get the cached credentials"))
            break
    return offers


def detect(
    environ: Mapping[str, str] = os.environ, which: Which = shutil.which, now: float | None = None
) -> Findings:
    import time

    found = Findings()
    for props, notes in (gcloud(environ), aws(environ, now or time.time()), azure(environ, which)):
        found.proposals += props
        found.notes += notes
    return found
