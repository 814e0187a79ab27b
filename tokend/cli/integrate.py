"""``tokend integrate CONSUMER PROFILE``: write a consumer's config to use tokend-print.

Each consumer lives in ``tokend/integrations/<name>.py`` and exposes
``apply(profile: str, helper: str, *, dry_run: bool) -> str``: it edits the
consumer's config (preserving the rest of it) and returns what it did.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import click

from tokend import config

#: consumer name -> module implementing it
CONSUMERS: dict[str, str] = {
    "aws": "tokend.integrations.aws",
    "codex": "tokend.integrations.codex",
    "kubectl": "tokend.integrations.kubectl",
}


def helper_path() -> str:
    """Absolute path of tokend-print: consumers such as Codex do not expand ``~`` or PATH reliably."""
    here = os.path.join(os.path.dirname(os.path.realpath(sys.argv[0])), "tokend-print")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("tokend-print")
    return os.path.realpath(found) if found else "tokend-print"


def register(cli: click.Group) -> None:
    @cli.command("integrate")
    @click.argument("consumer", type=click.Choice(sorted(CONSUMERS)) if CONSUMERS else str)
    @click.argument("profile")
    @click.option("--dry-run", is_flag=True, help="print the change instead of writing it")
    def integrate(consumer: str, profile: str, dry_run: bool) -> None:
        """Point CONSUMER (e.g. codex, aws, kubectl) at PROFILE."""
        config.load().profile(profile)  # unknown profile: exit 2 before touching anything
        module = importlib.import_module(CONSUMERS[consumer])
        click.echo(module.apply(profile, helper_path(), dry_run=dry_run))
