"""``tokend secret set|delete PROFILE``: static secrets in the OS keychain."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from tokend.client import control, paths
from tokend.core import config
from tokend.core.errors import DaemonUnreachable, UsageError
from tokend.sources.keyring import KeyringSource


def _source(name: str) -> KeyringSource:
    cfg = config.load()
    profile = cfg.profile(name)
    if profile.source != "keyring":
        raise UsageError(
            f"profile {name!r} uses source {profile.source!r}; tokend secret works on keyring profiles",
            profile=name,
        )
    return KeyringSource(name, profile.options, clock=lambda: 0.0)


def _forget(name: str) -> None:
    # A running daemon must not keep serving the previous value, nor the
    # daemonless cache (TOKEND_NO_DAEMON) for the rest of its ttl.
    with contextlib.suppress(DaemonUnreachable):
        control.run("drop", {"profile": name})
    cache_dir = os.path.join(paths.runtime_dir(), "cache")
    if os.path.isdir(cache_dir):
        from tokend.core.localcache import LocalCache

        LocalCache(cache_dir).forget(config.load().profile(name))


def register(cli: click.Group) -> None:
    @cli.group("secret")
    def secret() -> None:
        """Store static secrets (API keys) in the OS keychain."""

    @secret.command("set")
    @click.argument("profile")
    def set_(profile: str) -> None:
        """Store the secret of PROFILE, read from stdin or a no-echo prompt."""
        source = _source(profile)
        if sys.stdin.isatty():
            value = click.prompt(f"secret for {profile}", hide_input=True, confirmation_prompt=True)
        else:
            value = sys.stdin.read().strip()
        if not value:
            raise UsageError("empty secret; nothing stored", profile=profile)
        source.store(value)
        _forget(profile)
        click.echo(f"stored the secret of {profile} in the keychain", err=True)

    @secret.command("delete")
    @click.argument("profile")
    def delete(profile: str) -> None:
        """Remove the secret of PROFILE from the keychain."""
        if not _source(profile).delete():
            raise UsageError("no secret stored for this profile", profile=profile)
        _forget(profile)
        click.echo(f"deleted the secret of {profile}", err=True)
