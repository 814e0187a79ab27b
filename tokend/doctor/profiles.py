"""Per-profile checks: the source can run here, whose credential it is, an optional test fetch."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from importlib.util import find_spec

from tokend.core.config import Config, Profile
from tokend.core.errors import LoginRequired, TokendError
from tokend.doctor import Check, failed, ok
from tokend.sources import registry

#: source -> (modules its extra provides, the extra). Looked up with find_spec:
#: nothing heavy is imported to answer "is it installed".
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "google": (("google.auth", "requests"), "google"),
    "gcp-secretmanager": (("google.auth", "requests"), "google"),
    "aws": (("boto3",), "aws"),
    "aws-secretsmanager": (("boto3",), "aws"),
    "aws-ssm": (("boto3",), "aws"),
    "azure": (("azure.identity",), "azure"),
    "azure-keyvault": (("azure.identity",), "azure"),
    "vault": (("requests",), "vault"),
}

#: Runs one request the way ``tokend get PROFILE --format json`` does; the JSON reply.
Fetch = Callable[[str], str]


def profile_checks(cfg: Config, fetch: Fetch | None) -> list[Check]:
    checks: list[Check] = []
    for name, prof in sorted(cfg.profiles.items()):
        label = f"profile {name}"
        problem = _unavailable(prof)
        if problem is not None:
            checks.append(failed(label, f"source {prof.source}: {problem[0]}", problem[1]))
            continue
        identity = _identity(prof)
        checks.append(ok(label, f"source {prof.source} available" + (f", {identity}" if identity else "")))
        if fetch is not None:
            checks.append(_fetch_check(name, fetch))
    return checks


def _unavailable(prof: Profile) -> tuple[str, str] | None:
    """(what is missing, how to get it), or None when the source can run here."""
    modules, extra = EXTRAS.get(prof.source, ((), ""))
    missing = [m for m in modules if not _importable(m)]
    if missing:
        return (
            f"{', '.join(missing)} not installed",
            f"pip install 'tokend[{extra}]' (pipx: pipx install --force 'tokend[{extra}]')",
        )
    program = _program(prof)
    if program is not None and shutil.which(program) is None:
        return f"{program} not found", f"install {program} or name it by its full path in the profile"
    if registry.lookup(prof.source) is None:
        return "no such source installed", "install the plug-in that provides it"
    return None


def _importable(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package
        return False


def _program(prof: Profile) -> str | None:
    """The executable a source runs, where the profile names one."""
    if prof.source == "command":
        argv = prof.options.get("command")
        if isinstance(argv, str):
            argv = argv.split()
        return str(argv[0]) if argv else None
    if prof.source == "1password":
        return str(prof.options.get("op_path") or "op")
    return None


def _identity(prof: Profile) -> str | None:
    """Whose credential this is, when the source can tell without the network."""
    cls = registry.lookup(prof.source)
    if cls is None or "identity" not in vars(cls):
        return None  # the default identity is only the profile's own name
    try:
        source = cls(prof.name, prof.options, clock=time.time)
        try:
            identity = source.identity()
        finally:
            source.close()
    except (TokendError, OSError, ValueError, KeyError) as e:
        return f"identity unknown ({e})"
    return f"identity {identity}"


def _fetch_check(name: str, fetch: Fetch) -> Check:
    label = f"profile {name} fetch"
    started = time.monotonic()
    try:
        reply = fetch(name)
    except LoginRequired:
        return failed(label, "login required", f"tokend login {name}")
    except TokendError as e:
        if "login" in e.message:
            return failed(label, e.message, f"tokend login {name}")
        return failed(label, e.message, f"see `tokend status`; correct [profiles.{name}] in the config")
    took = time.monotonic() - started
    try:
        expires = json.loads(reply).get("expires_at")
    except (ValueError, AttributeError):
        expires = None
    until = f", expires {expires}" if expires else ", no expiry"
    return ok(label, f"a credential came back in {took:.2f}s{until}")
