"""Which consumers (Codex, Claude Code, AWS, kubectl, git, docker) run this installation's helpers.

Each consumer's config is read where ``tokend integrate`` writes it; every
entry that runs a tokend helper becomes one check: the helper must exist and
be this installation's, and the profile it asks for must be configured.
A consumer with no such entry gets an info line saying how to set it up.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokend.core.config import Config
from tokend.doctor import Check, failed, info, ok
from tokend.integrations import aws, claude, codex, kubectl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRINT, GIT_HELPER, DOCKER_HELPER = "tokend-print", "git-credential-tokend", "docker-credential-tokend"
GIT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Use:
    """One place in a consumer's config that runs a tokend helper."""

    where: str
    helper: str  # as written: a path, or a name looked up on PATH
    profile: str | None = None


class Unreadable(Exception):
    """A consumer config that exists but cannot be read or parsed."""

    def __init__(self, message: str, fix: str = "correct that file, or move it away") -> None:
        super().__init__(message)
        self.fix = fix


def consumer_checks(this_print: str, cfg: Config | None) -> list[Check]:
    """One check per helper use found, or one info line per consumer that uses none."""
    here = os.path.dirname(this_print)
    mine = {name: os.path.join(here, name) if here else name for name in (PRINT, GIT_HELPER, DOCKER_HELPER)}
    checks: list[Check] = []
    for consumer, (find, setup) in FINDERS.items():
        try:
            uses = find()
        except Unreadable as e:
            checks.append(failed(consumer, str(e), e.fix))
            continue
        if not uses:
            checks.append(info(consumer, f"does not use tokend (set up: {setup})"))
        checks += [_check(consumer, use, mine, cfg, setup) for use in uses]
    return checks


def _check(consumer: str, use: Use, mine: dict[str, str], cfg: Config | None, setup: str) -> Check:
    name = os.path.basename(use.helper)
    fix = setup.replace("PROFILE", use.profile) if use.profile else setup
    found = shutil.which(use.helper) if "/" not in use.helper else use.helper
    if found is None or not os.access(found, os.X_OK):
        missing = "is not on PATH" if "/" not in use.helper else "does not exist"
        return failed(consumer, f"{use.where} runs {use.helper}, which {missing}", fix)
    ours = shutil.which(mine[name]) if "/" not in mine[name] else mine[name]
    if ours is None or os.path.realpath(found) != os.path.realpath(ours):
        return failed(consumer, f"{use.where} runs {found}, not this installation's {ours or name}", fix)
    if use.profile is not None and cfg is not None and use.profile not in cfg.profiles:
        return failed(
            consumer,
            f"{use.where} asks for profile {use.profile!r}, which the config does not have",
            f"add [profiles.{use.profile}] to the config, or point {consumer} at another profile",
        )
    return ok(consumer, f"{use.where} runs {use.helper}" + (f" {use.profile}" if use.profile else ""))


def _read_json(path: str) -> Any:
    """The JSON document at ``path``; None when the file is missing or empty."""
    text = _read(path)
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise Unreadable(f"{path}: invalid JSON ({e})") from None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise Unreadable(f"{path}: cannot read ({e})") from None


def _codex() -> list[Use]:
    path = codex.codex_config_path()
    text = _read(path)
    if text is None:
        return []
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Unreadable(f"{path}: invalid TOML ({e})") from None
    uses = []
    for name, provider in (doc.get("model_providers") or {}).items():
        auth = provider.get("auth") if isinstance(provider, dict) else None
        command = auth.get("command") if isinstance(auth, dict) else None
        if isinstance(command, str) and os.path.basename(command) == PRINT:
            args = auth.get("args") if isinstance(auth, dict) else None
            profile = args[0] if isinstance(args, list) and args and isinstance(args[0], str) else None
            uses.append(Use(f"{path} [model_providers.{name}]", command, profile))
    return uses


def _claude() -> list[Use]:
    path = claude.settings_path()
    doc = _read_json(path)
    command = doc.get(claude.KEY) if isinstance(doc, dict) else None
    return _from_command(f"{path} {claude.KEY}", command) if isinstance(command, str) else []


def _from_command(where: str, command: str) -> list[Use]:
    """A shell command line that runs tokend-print PROFILE (possibly after ``exec``)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return []
    if argv[:1] == ["exec"]:
        argv = argv[1:]
    if not argv or os.path.basename(argv[0]) != PRINT:
        return []
    return [Use(where, argv[0], argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None)]


def _aws() -> list[Use]:
    path = aws.config_path()
    text = _read(path)
    uses: list[Use] = []
    section = "?"
    for line in (text or "").splitlines():
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            section = " ".join(header.group(1).split())
            continue
        key, eq, value = line.partition("=")
        if eq and key.strip() == "credential_process":
            uses += _from_command(f"{path} [{section}]", value.strip())
    return uses


def _kubectl() -> list[Use]:
    """exec plugins in every kubeconfig file; a line scan, so PyYAML is not needed."""
    uses: list[Use] = []
    files = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)
    for path in [os.path.expanduser(f) for f in files if f] or [kubectl.kubeconfig_path()]:
        lines = (_read(path) or "").splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^\s*(?:-\s+)?command:\s*(.+?)\s*$", line)
            if not m or os.path.basename(_scalar(m.group(1))) != PRINT:
                continue
            profile = None
            for later in lines[i + 1 : i + 8]:
                arg = re.match(r"^\s*-\s+(.+?)\s*$", later)
                if arg and not re.match(r"^\s*-\s+\w+:", later):
                    profile = _scalar(arg.group(1))
                    break
            uses.append(Use(f"{path} (exec)", _scalar(m.group(1)), profile))
    return uses


def _scalar(text: str) -> str:
    """A YAML scalar as written by kubectl or tokend integrate (plain, '…' or "…")."""
    if text.startswith('"'):
        try:
            value = json.loads(text)
            return value if isinstance(value, str) else text
        except ValueError:
            return text.strip('"')
    return text[1:-1].replace("''", "'") if text.startswith("'") and text.endswith("'") else text


def _git() -> list[Use]:
    git = shutil.which("git")
    if git is None:
        return []
    try:
        proc = subprocess.run(
            [git, "config", "--get-regexp", r"^credential\..*helper$"],
            cwd="/",  # outside any repository: the global and system config only
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unreadable(f"git config could not be read ({e})", "check that git runs") from None
    uses = []
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        try:
            argv = shlex.split(value)
        except ValueError:
            continue
        if not argv or value.startswith("!"):
            continue
        # git runs an absolute path as is, and a bare NAME as git-credential-NAME.
        helper = argv[0] if argv[0].startswith("/") else f"git-credential-{argv[0]}"
        if os.path.basename(helper) == GIT_HELPER:
            uses.append(Use(f"git config {key}", helper))
    return uses


def _docker() -> list[Use]:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(base, "config.json")
    doc = _read_json(path)
    if not isinstance(doc, dict):
        return []
    uses = []
    if doc.get("credsStore") == "tokend":
        uses.append(Use(f"{path} credsStore", DOCKER_HELPER))
    helpers = doc.get("credHelpers")
    for registry, name in helpers.items() if isinstance(helpers, dict) else []:
        if name == "tokend":
            uses.append(Use(f"{path} credHelpers[{registry}]", DOCKER_HELPER))
    return uses


#: consumer -> (finder, how to set it up); the order of doctor's output.
FINDERS: dict[str, tuple[Callable[[], list[Use]], str]] = {
    "codex": (_codex, "tokend integrate codex PROFILE"),
    "claude": (_claude, "tokend integrate claude PROFILE"),
    "aws": (_aws, "tokend integrate aws PROFILE"),
    "kubectl": (_kubectl, "tokend integrate kubectl PROFILE"),
    "git": (_git, "tokend integrate git PROFILE --host HOST"),
    "docker": (
        _docker,
        f'"credHelpers": {{"REGISTRY": "tokend"}} in ~/.docker/config.json, {DOCKER_HELPER} on PATH',
    ),
}
