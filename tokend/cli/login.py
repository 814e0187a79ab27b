"""``tokend login|logout PROFILE``: the one place that may open a browser or prompt.

Concurrent logins for one identity share a single flow: the first takes the
identity's lock and signs in; the others wait for the lock and find the login
already done. Afterwards the daemon drops what it cached for every profile of
that identity, so waiting callers get the new credential at once.
"""

from __future__ import annotations

import hashlib
import os
import time

import click

from tokend import ci
from tokend.client import control, paths
from tokend.client.rundir import prepare_dir
from tokend.core import config
from tokend.core.broker import build_source
from tokend.core.errors import DaemonUnreachable, LoginRequired, Relayed, UsageError
from tokend.core.locks import private_lock
from tokend.sources.base import BaseSource, LoginContext


def _identity_files(identity: str) -> tuple[str, str]:
    rundir = paths.runtime_dir()
    prepare_dir(rundir)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    base = os.path.join(rundir, f"login-{digest}")
    return base + ".lock", base + ".done"


def _profiles_sharing(cfg: config.Config, source: BaseSource) -> list[str]:
    names = []
    for name, prof in cfg.profiles.items():
        other = build_source(prof, time.time)
        if other.supports_login and other.identity() == source.identity():
            names.append(name)
    return names


def _forget(names: list[str]) -> None:
    for name in names:
        try:
            control.run("drop", {"profile": name})
        except DaemonUnreachable:
            return


#: The daemon bounds a revocation by the profile's timeout, at most 20 s: wait a little longer.
REVOKE_WAIT = 30.0


def _revoke_in_daemon(name: str) -> str:
    """``tokend logout`` of a Revocable source: the daemon's instance revokes; its line."""
    try:
        status, body = control.request("revoke", {"profile": name}, timeout=REVOKE_WAIT)
    except DaemonUnreachable as e:
        if not e.message.startswith("no daemon running"):
            raise
        return f"{name}: no daemon is running, so none holds a lease or token to revoke"
    text = body.decode("utf-8", "replace").strip()
    if status != 0:
        raise Relayed(text, status)
    return text


def _login_source(name: str) -> tuple[config.Config, BaseSource]:
    cfg = config.load()
    source = build_source(cfg.profile(name), time.time)
    if not source.supports_login:
        raise UsageError(
            f"source {cfg.profile(name).source!r} has no interactive login; "
            "it gets its credentials without a person",
            profile=name,
        )
    return cfg, source


def register(cli: click.Group) -> None:
    @cli.command("login")
    @click.argument("profile")
    @click.option("--no-browser", is_flag=True, help="print the sign-in URL instead of opening it")
    @click.option("--timeout", type=float, default=600.0, show_default=True,
                  help="seconds to wait for the person to finish signing in")
    def login(profile: str, no_browser: bool, timeout: float) -> None:
        """Sign in for PROFILE (and every profile sharing its identity)."""
        if ci.active():  # never prompt where nobody can answer
            raise LoginRequired(
                "CI=true: nobody can sign in here; give the job credentials that need no person "
                '(oidc = "github" or "gitlab:VAR", a workload identity, or an environment variable)',
                profile=profile,
            )
        cfg, source = _login_source(profile)
        lock_path, done_path = _identity_files(source.identity())
        started = time.time()
        with private_lock(lock_path):
            try:
                already = os.stat(done_path).st_mtime >= started
            except FileNotFoundError:
                already = False
            if already:
                click.echo(f"{profile}: signed in by a concurrent tokend login", err=True)
            else:
                ctx = LoginContext(profile=profile, echo=lambda m: click.echo(m, err=True),
                                   open_browser=not no_browser, timeout=timeout,
                                   prompt=lambda m: str(click.prompt(m, err=True)),
                                   profiles=cfg.profiles)
                source.login(ctx)
                with open(done_path, "w"):
                    pass
                click.echo(f"{profile}: signed in", err=True)
        _forget(_profiles_sharing(cfg, source))

    @cli.command("logout")
    @click.argument("profile")
    def logout(profile: str) -> None:
        """Forget the sign-in of PROFILE; revoke the Vault lease and token tokend holds for it."""
        cfg = config.load()
        if build_source(cfg.profile(profile), time.time).supports_revoke:
            click.echo(_revoke_in_daemon(profile), err=True)
            return
        cfg, source = _login_source(profile)
        source.logout()
        _forget(_profiles_sharing(cfg, source))
        click.echo(f"{profile}: signed out", err=True)
