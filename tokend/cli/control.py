"""``tokend status``, ``tokend stop``, ``tokend reload``: talk to the running daemon."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import click

from tokend.cli import endpoints
from tokend.client import control
from tokend.core.durations import format_duration


def _ago(ts: float | None, now: float) -> str:
    return "-" if ts is None else format_duration(now - ts) + " ago"


def _in(ts: float | None, now: float) -> str:
    return "-" if ts is None else "in " + format_duration(ts - now)


def render_status(doc: dict[str, Any], now: float) -> str:
    rss = doc.get("rss_bytes")
    lines = [
        f"daemon pid {doc['pid']}, up {format_duration(doc['uptime'])}, rss {rss / 2**20:.1f} MiB"
        if rss
        else f"daemon pid {doc['pid']}",
        f"socket {doc['socket']}",
        f"config {doc['config']}"
        + (
            f" (changed but invalid, still using the previous one: {doc['config_error']})"
            if doc.get("config_error")
            else ""
        ),
        *endpoints.status_lines(doc.get("endpoints") or []),
        "",
    ]
    header = (
        "PROFILE",
        "SOURCE",
        "STATE",
        "EXPIRES IN",
        "LAST REFRESH",
        "NEXT REFRESH",
        "HITS",
        "FETCHES",
        "ROTATIONS",
        "LAST ERROR",
    )
    rows = [header]
    for p in doc["profiles"]:
        exp = p.get("expires_in")
        state = p["state"] + (" (refreshing)" if p.get("refreshing") else "")
        rows.append(
            (
                p["profile"],
                p["source"],
                state,
                "-" if exp is None else format_duration(exp),
                _ago(p.get("last_refresh"), now),
                _in(p.get("next_refresh"), now),
                str(p.get("hits", 0)),
                str(p.get("fetches", 0)),
                str(p.get("rotations", 0)),  # the secret changed upstream (or a credential was replaced)
                p.get("last_error") or "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return "\n".join(line.rstrip() for line in lines)


def register(cli: click.Group) -> None:
    @cli.command("status")
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def status(as_json: bool) -> None:
        """Show each profile: state, expiry, refreshes, hits, last error (never a secret)."""
        doc = control.status()
        if as_json:
            doc["time"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
        else:
            click.echo(render_status(doc, time.time()))

    @cli.command("stop")
    def stop() -> None:
        """Stop the running daemon."""
        click.echo(control.run("stop"))

    @cli.command("reload")
    def reload() -> None:
        """Reload the config; cached credentials of changed profiles are dropped."""
        click.echo(control.run("reload"))
