"""``tokend status``, ``tokend stop``, ``tokend reload``: talk to the running daemon."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import click

from tokend.cli import endpoints
from tokend.client import control, paths
from tokend.core import config as config_mod
from tokend.core.durations import format_duration
from tokend.core.errors import DaemonUnreachable, Relayed, TokendError

#: What to do when no daemon runs (said by ``tokend status``).
START_HINT = (
    "no daemon is running: the first `tokend-print PROFILE` starts one, "
    "or run it as a service with `tokend service install`"
)
NOT_RUNNING = "not running"
#: The daemon gives revocations at stop 4 s in all (STOP_REVOKE_BUDGET): wait well past that.
STOP_TIMEOUT = 15.0


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


def not_running(why: DaemonUnreachable) -> bool:
    """Whether nothing listens on the socket, as opposed to a daemon that misbehaves
    (no answer, another user's, an unreadable status): only then is there a listing."""
    return why.message.startswith("no daemon running")


def offline_status(why: DaemonUnreachable) -> dict[str, Any]:
    """What ``status`` can say without a daemon: the configured profiles, none running."""
    doc: dict[str, Any] = {
        "running": False,
        "socket": paths.socket_path(),
        "error": why.message,
        "hint": START_HINT,
        "profiles": [],
    }
    try:
        cfg = config_mod.load()
    except TokendError as e:
        doc.update(config=str(config_mod.default_path()), config_error=e.message)
        return doc
    doc.update(config=str(cfg.path or "(built-in default)"), config_error=None)
    doc["profiles"] = [
        {"profile": p.name, "source": p.source, "state": NOT_RUNNING} for p in cfg.profiles.values()
    ]
    return doc


def render_offline(doc: dict[str, Any]) -> str:
    lines = [doc["hint"], f"socket {doc['socket']}"]
    if doc.get("config_error"):
        lines.append(f"config {doc['config']}: invalid: {doc['config_error']}")
        return "\n".join(lines)
    lines += [f"config {doc['config']}", ""]
    rows = [("PROFILE", "SOURCE", "STATE")]
    rows += [(p["profile"], p["source"], p["state"]) for p in doc["profiles"]]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines += [f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}" for r in rows]
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    @cli.command("status")
    @click.option("--json", "as_json", is_flag=True, help="machine-readable output")
    def status(as_json: bool) -> None:
        """Show each profile: state, expiry, refreshes, hits, last error (never a secret).

        Without a daemon: the configured profiles (not running) and how to start
        one, exit status 3.
        """
        try:
            doc = control.status()
        except DaemonUnreachable as e:
            if not not_running(e):
                raise
            offline = offline_status(e)
            text = json.dumps(offline, indent=2, sort_keys=True) if as_json else render_offline(offline)
            click.echo(text)
            raise  # the one stderr line and exit status 3, as every control command
        if as_json:
            doc["time"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
        else:
            click.echo(render_status(doc, time.time()))

    @cli.command("stop")
    def stop() -> None:
        """Stop the running daemon (profiles with revoke_on_stop revoke their leases first)."""
        status, body = control.request("stop", timeout=STOP_TIMEOUT)
        text = body.decode("utf-8", "replace").strip()
        if status != 0:
            raise Relayed(text, status)
        click.echo(text)

    @cli.command("reload")
    def reload() -> None:
        """Reload the config; cached credentials of changed profiles are dropped."""
        click.echo(control.run("reload"))
