"""``tokend setup``: propose profiles for what is on this machine, write them, offer integrations.

An existing config is kept as it is (comments and all): proposals are added
as new ``[profiles.NAME]`` tables, never over a profile of the same name or
one already using the same AWS profile. ``--yes`` accepts every proposal
without asking and prints the ``tokend integrate`` commands instead of running them.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

import click

from tokend.core import config
from tokend.core.errors import UsageError
from tokend.integrations import configedit, detect


def _duplicate(existing: Mapping[str, Any], proposal: detect.Proposal) -> str | None:
    """The existing profile that already does what ``proposal`` would, if any."""
    if proposal.name in existing:
        return proposal.name
    wanted = {k: v for k, v in proposal.settings.items() if k in ("source", "aws_profile", "credential")}
    for name, body in existing.items():
        same = isinstance(body, Mapping) and all(body.get(k) == v for k, v in wanted.items())
        if same and wanted.get("source") in ("aws", "azure", "google"):
            return str(name)
    return None


def _terminal() -> bool:
    return sys.stdin.isatty()


def register(cli: click.Group) -> None:
    @cli.command("setup")
    @click.option("--yes", "-y", is_flag=True, help="accept every proposal without asking")
    @click.option("--dry-run", is_flag=True, help="print the config that would be written, write nothing")
    def setup(yes: bool, dry_run: bool) -> None:
        """Find gcloud, AWS and Azure CLI sign-ins and Codex/Claude set-ups; write profiles for them."""
        interactive = not yes and not dry_run
        if interactive and not _terminal():
            raise UsageError("no terminal to ask on: run tokend setup --yes (or --dry-run to look first)")
        path = config.default_path()
        doc = configedit.read(path)
        existing = dict(doc.get("profiles", {}))
        found = detect.detect()

        def say(line: str) -> None:
            click.echo(line, err=True)

        if not found.proposals:
            say("tokend setup: found no gcloud, AWS or Azure CLI sign-in to use")
            say(
                "next: sign in with one (gcloud auth application-default login, aws configure sso, "
                "az login) and run tokend setup again; or add a profile to "
                f"{path} yourself: a static key with source = \"keyring\" and "
                "tokend secret set NAME, any helper with source = \"command\" (see man tokend)"
            )
        added = []
        for proposal in found.proposals:
            same = _duplicate(existing, proposal)
            if same is not None:
                say(f"  keep  {same} (already in {path})")
                continue
            say(f"  found {proposal.summary}")
            if interactive and not click.confirm(f"add profile {proposal.name}?", default=True, err=True):
                continue
            configedit.add_profile(doc, proposal.name, proposal.settings, proposal.comments)
            added.append(proposal)
        for note in found.notes:
            say(f"  note  {note}")
        if added:
            text = configedit.render(doc, path)
            if dry_run:
                click.echo(text, nl=False)
            else:
                configedit.write(path, text)
                say(f"wrote {path}: added {', '.join(p.name for p in added)}")
        groups: set[str] = set()
        for p in added:
            if p.needs_login and (p.login_group is None or p.login_group not in groups):
                say(f"next: tokend login {p.name}")
                groups.add(p.login_group or p.name)
        profiles = [*(p.name for p in added), *existing]
        for offer in detect.consumers(os.environ, shutil.which, profiles):
            command = f"tokend integrate {offer.consumer} {offer.profile}"
            runnable = offer.profile in profiles and not dry_run
            ask = f"{offer.why}; run {command}?"
            if interactive and runnable and click.confirm(ask, default=False, err=True):
                from tokend.cli.integrate import CONSUMERS, helper_path

                module = importlib.import_module(CONSUMERS[offer.consumer])
                say(module.apply(offer.profile, helper_path(), dry_run=False))
            else:
                say(f"offer: {command}  ({offer.why})")
