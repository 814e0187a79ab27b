"""``tokend endpoints env``: the variables pointing a shell at the daemon's credential endpoints."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import click

from tokend.ci import envformats
from tokend.ci.inject import Var
from tokend.client import control
from tokend.core.errors import DaemonUnreachable

FORMATS = ("shell", "fish", "dotenv")


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(set_: Mapping[str, str], unset: Sequence[str], fmt: str) -> str:
    """``set_`` exported and ``unset`` removed, in ``fmt``.

    dotenv has no way to remove a variable: only the ones to set are written.
    """
    if fmt == "fish":
        lines = [f"set -e {name}\n" for name in unset]
        lines += [f"set -gx {name} {_fish_quote(value)}\n" for name, value in set_.items()]
        return "".join(lines)
    found = [Var(name, value, True) for name, value in set_.items()]
    if fmt == "dotenv":
        return envformats.dotenv(found)
    removed = f"unset {' '.join(shlex.quote(n) for n in unset)}\n" if unset else ""
    return removed + envformats.shell(found)


def fetch() -> dict[str, Any]:
    """The daemon's answer to ``endpoints``: {"set": {...}, "unset": [...], "errors": [...]}."""
    text = control.run("endpoints")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("set", {}), dict):
        raise DaemonUnreachable("the daemon sent an unreadable endpoints answer")
    return doc


def register(cli: click.Group) -> None:
    @cli.group("endpoints")
    def endpoints() -> None:
        """The credential endpoints the daemon serves ([endpoints] in the config)."""

    @endpoints.command("env")
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="shell", show_default=True)
    def env(fmt: str) -> None:
        """Print the variables that point SDKs at the daemon's endpoints.

        \b
        eval "$(tokend endpoints env)"            # sh, bash, zsh
        tokend endpoints env --format fish | source
        The tokens come from the daemon's memory over its socket, never from a file.
        """
        doc = fetch()
        for line in doc.get("errors", []):
            click.echo(str(line), err=True)
        set_ = {str(k): str(v) for k, v in doc.get("set", {}).items()}
        unset = [str(v) for v in doc.get("unset", [])]
        if not set_:
            click.echo("tokend: no endpoints served (add an [endpoints] table to the config)", err=True)
        click.echo(render(set_, unset, fmt), nl=False)


def status_lines(served: Sequence[Mapping[str, Any]]) -> list[str]:
    """``tokend status``'s endpoint lines: cloud, profile, URL, requests (or why not served)."""
    lines = []
    for e in served:
        if e.get("error"):
            lines.append(f"endpoint {e.get('cloud')}: {e['error']}")
        else:
            what = f"endpoint {e.get('cloud')} ({e.get('profile')}) {e.get('url')}"
            lines.append(f"{what}, {e.get('requests', 0)} requests")
    return lines
