"""``tokend integrate git PROFILE --host HOST``: git asks git-credential-tokend for HOST.

Two edits: ``[hosts] "HOST" = "PROFILE"`` in the tokend config (comments and
layout kept), and in git's global config

    [credential "https://HOST"]
        helper =
        helper = /abs/path/git-credential-tokend

(the empty value drops helpers configured before for that URL, as
``gh auth setup-git`` does). Without ``--host``, the hosts ``[hosts]`` already
routes to PROFILE are configured.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from tokend.client import hosts
from tokend.core import config
from tokend.core.errors import ConfigError, UsageError
from tokend.integrations import configedit

HELPER_NAME = "git-credential-tokend"
GIT_TIMEOUT = 10.0
#: cli/integrate.py passes --host to consumers that set this.
TAKES_HOST = True


def git_helper(helper: str) -> str:
    """git-credential-tokend next to tokend-print (same installation)."""
    path = os.path.join(os.path.dirname(helper), HELPER_NAME)
    if not os.access(path, os.X_OK):
        found = shutil.which(HELPER_NAME)
        if found is None:
            raise UsageError(f"{HELPER_NAME} is not installed next to {helper} nor on PATH")
        path = os.path.realpath(found)
    return path


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    git = shutil.which("git")
    if git is None:
        raise UsageError("git is not installed (or not on PATH)")
    try:
        return subprocess.run(
            [git, "config", "--global", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(f"git config did not finish within {GIT_TIMEOUT:g}s") from None


def _configure_git(host: str, value: str, *, dry_run: bool) -> bool:
    """Make ``value`` the only credential helper for https://HOST; True when changed."""
    key = f"credential.https://{host}.helper"
    current = _git("--get-all", key)
    have = current.stdout.splitlines() if current.returncode == 0 else []
    if have == ["", value]:
        return False
    if dry_run:
        return True
    steps = [("--unset-all", key), ("--add", key, ""), ("--add", key, value)]
    for step in steps if have else steps[1:]:
        done = _git(*step)
        if done.returncode != 0:
            raise UsageError(f"git config {' '.join(step[:2])} failed: {done.stderr.strip()}")
    return True


def apply(profile: str, helper: str, *, dry_run: bool, host: str | None = None) -> str:
    cfg = config.load()
    path = cfg.path or config.default_path()
    if host:
        name = hosts.normalize(host)
        why = hosts.check_pattern(name)
        if why:
            raise UsageError(f"--host {host!r}: {why}")
        targets = [name]
    else:
        targets = sorted(k for k, route in cfg.hosts.items() if route.profile == profile)
        if not targets:
            raise UsageError(
                f"which git host should use {profile}? give --host (e.g. --host github.com)", profile=profile
            )
    value = shlex.quote(git_helper(helper))
    lines = []
    if host:
        doc = configedit.read(path)
        if configedit.set_host(doc, targets[0], profile):
            try:
                text = configedit.render(doc, path)
            except ConfigError as e:
                raise ConfigError(f"the new [hosts] entry would break the config: {e}") from None
            if not dry_run:
                configedit.write(path, text)
            lines.append(f"{path}: [hosts] {targets[0]!r} = {profile!r}")
    for target in targets:
        if _configure_git(target, value, dry_run=dry_run):
            lines.append(f"git config --global: credential.https://{target}.helper = {value}")
    if dry_run:
        return "\n".join(["# would write:", *lines]) if lines else "already up to date"
    if not lines:
        return f"git already asks tokend ({profile}) for {', '.join(targets)}"
    return "\n".join([*lines, f"try: git ls-remote https://{targets[0].removeprefix('*.')}/OWNER/REPO"])
