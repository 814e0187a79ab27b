"""``tokend get``: the full-featured form of tokend-print, able to run without a daemon."""

from __future__ import annotations

import os
import sys
import time

import click

from tokend import ci, formats
from tokend.client import fastpath
from tokend.core.durations import parse_duration
from tokend.core.errors import Relayed, SourceTimeout, UsageError


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def daemonless(profile: str, fmt: str, min_ttl: float | None, refresh: bool, timeout: float) -> str:
    """Fetch through the cross-process cache in the runtime dir, no daemon involved."""
    from tokend.core.daemonless import local_broker

    with local_broker(timeout) as broker:
        try:
            cred = broker.get(profile, fmt=fmt, min_ttl=min_ttl, force=refresh, timeout=timeout)
        except SourceTimeout as e:
            if e.profile != profile:
                raise
            # Worded as tokend-print words a missed deadline with a daemon.
            raise SourceTimeout(fastpath.missed_deadline(timeout), profile=profile) from None
        return formats.render(cred, fmt, _exec_info())


def _exec_info() -> dict[str, str]:
    info = os.environ.get("KUBERNETES_EXEC_INFO")
    return {"exec_info": info} if info else {}


def via_daemon(profile: str, fmt: str, min_ttl: str | None, refresh: bool, timeout: float) -> str:
    """Ask the daemon exactly as tokend-print does (autostart, TOKEND_NO_AUTOSTART,
    TOKEND_NO_FALLBACK, the deadline), going daemonless in this process when none answers."""
    fields = {"profile": profile, "format": fmt, **_exec_info()}
    if min_ttl:
        fields["min_ttl"] = min_ttl
    if refresh:
        fields["refresh"] = "1"

    def in_process(fields: dict[str, str], deadline: float) -> tuple[int, bytes]:
        left = max(deadline - time.monotonic(), 0.1)
        ttl = parse_duration(min_ttl) if min_ttl else None
        return 0, daemonless(profile, fmt, ttl, refresh, left).encode()

    try:
        status, body = fastpath.ask(fields, timeout, in_process)
    except fastpath.Fail as f:
        raise Relayed(f.line, f.status) from None
    if status != 0:
        raise Relayed(body.decode("utf-8", "replace").strip(), status)
    return body.decode("utf-8")


def register(cli: click.Group) -> None:
    @cli.command("get")
    @click.argument("profile")
    @click.option(
        "--format",
        "-f",
        "fmt",
        default="raw",
        show_default=True,
        type=click.Choice(list(formats.RENDERERS)),
        help="output format",
    )
    @click.option("--min-ttl", help='least life the credential must have left, e.g. "10m"')
    @click.option("--refresh", is_flag=True, help="ask upstream for a new credential (rate-limited)")
    @click.option(
        "--no-daemon",
        is_flag=True,
        envvar="TOKEND_NO_DAEMON",
        help="fetch in this process through the shared local cache (default with CI=true)",
    )
    @click.option(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the credential (default: TOKEND_TIMEOUT or 4)",
    )
    def get(
        profile: str, fmt: str, min_ttl: str | None, refresh: bool, no_daemon: bool, timeout: float | None
    ) -> None:
        """Print the credential of PROFILE."""
        ttl = _duration(click.get_current_context(), click.Option(["--min-ttl"]), min_ttl)
        if timeout is None:
            try:
                timeout = fastpath.timeout_from_env()
            except fastpath.Fail as f:
                raise UsageError(f.line.removeprefix("tokend-print: ")) from None
        if timeout <= 0:
            raise UsageError("--timeout must be positive")
        no_daemon = no_daemon or ci.daemonless()  # CI=true, unless TOKEND_NO_DAEMON says otherwise
        if no_daemon:
            out = daemonless(profile, fmt, ttl, refresh, timeout)
        else:
            out = via_daemon(profile, fmt, min_ttl, refresh, timeout)
        sys.stdout.write(out)
        sys.stdout.flush()
