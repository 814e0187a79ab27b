"""``tokend setup``: what is already on this machine, and the profiles that would use it.

Reads, never changes: gcloud's configuration (ADC file, active account),
the AWS config and credentials files (profiles, ``[sso-session]`` sections),
the Azure CLI's ``azureProfile.json``, and whether the Codex CLI and Claude
Code are set up here. Each finding becomes a proposed tokend profile (a
name, its settings and comments saying where it came from) or an offer to run
``tokend integrate``. Nothing here touches the network or runs a command.
"""

from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokend.sources.google.adc import gcloud_active_config, gcloud_config_dir, gcloud_config_file

Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Proposal:
    name: str
    settings: dict[str, Any]
    comments: tuple[str, ...] = ()
    summary: str = ""
    needs_login: bool = False  # a person signs in next: tokend login NAME
    login_group: str | None = None  # proposals sharing one sign-in (an SSO session)


@dataclass(frozen=True)
class Offer:
    consumer: str
    profile: str
    why: str


@dataclass
class Findings:
    proposals: list[Proposal] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def profile_name(text: str) -> str:
    """A valid tokend profile name made from ``text``."""
    name = re.sub(r"[^A-Za-z0-9_.@-]+", "-", text).strip("-._@") or "profile"
    return name[:64]


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as f:  # the Azure CLI writes a BOM
            return json.load(f)
    except (OSError, ValueError):
        return None


def _ini(path: str) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return parser


# -- gcloud ------------------------------------------------------------------------


def _gcloud_accounts(directory: str) -> list[str]:
    """Accounts gcloud holds credentials for (``gcloud auth list``), read-only."""
    path = os.path.join(directory, "credentials.db")
    if not os.path.isfile(path):
        return []
    uri = f"file:{path}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1)) as db:
            return sorted(str(row[0]) for row in db.execute("SELECT account_id FROM credentials"))
    except sqlite3.Error:
        return []


def gcloud(environ: Mapping[str, str]) -> tuple[list[Proposal], list[str]]:
    directory = gcloud_config_dir(environ)
    adc_path = environ.get("GOOGLE_APPLICATION_CREDENTIALS") or os.path.join(
        directory, "application_default_credentials.json"
    )
    adc = _read_json(adc_path)
    active = ""
    with contextlib.suppress(OSError), open(gcloud_active_config(environ), encoding="utf-8") as f:
        active = f.read().strip()
    props = _ini(gcloud_config_file(active or "default", environ))
    account = props.get("core", "account", fallback="") if props else ""
    accounts = _gcloud_accounts(directory)
    if not isinstance(adc, dict) and not account and not accounts:
        return [], []
    settings: dict[str, Any] = {"source": "google"}
    comments = []
    if isinstance(adc, dict):
        kind = str(adc.get("type") or "unknown")
        who = adc.get("client_email") or adc.get("account")
        comments.append(
            f"tokend setup: gcloud Application Default Credentials ({kind})" + (f", {who}" if who else "")
        )
        if adc.get("quota_project_id"):
            settings["quota_project"] = str(adc["quota_project_id"])
        summary = f"google: Application Default Credentials in {adc_path} ({kind})"
        return [Proposal("google", settings, tuple(comments), summary)], []
    who = account or accounts[0]
    comments.append(f"tokend setup: gcloud account {who}, no Application Default Credentials yet")
    summary = f"google: gcloud account {who} (sign in once with: tokend login google)"
    return [Proposal("google", settings, tuple(comments), summary, needs_login=True)], []


# -- AWS ------------------------------------------------------------------------------


def _aws_paths(environ: Mapping[str, str]) -> tuple[str, str]:
    home = os.path.expanduser("~")
    config = environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    creds = environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    return os.path.expanduser(config), os.path.expanduser(creds)


def _runs_tokend(body: Mapping[str, str]) -> bool:
    try:
        argv = shlex.split(body.get("credential_process", ""))
    except ValueError:
        return False
    return bool(argv) and argv[0].rsplit("/", 1)[-1] == "tokend-print"


def _sso_signed_in(key: str, now: float) -> bool:
    name = hashlib.sha1(key.encode()).hexdigest() + ".json"
    path = os.path.join(os.path.expanduser("~"), ".aws", "sso", "cache", name)
    doc = _read_json(path)
    if not isinstance(doc, dict):
        return False
    try:
        stamp = str(doc.get("expiresAt", "")).replace("Z", "+00:00")
        expires = dt.datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return False
    return expires > now or bool(doc.get("refreshToken"))


def aws(environ: Mapping[str, str], now: float) -> tuple[list[Proposal], list[str]]:
    config_path, creds_path = _aws_paths(environ)
    config = _ini(config_path)
    creds = _ini(creds_path)
    profiles: dict[str, dict[str, str]] = {}
    sessions: dict[str, dict[str, str]] = {}
    if config is not None:
        for section in config.sections():
            words = section.split()
            if section == "default":
                profiles["default"] = dict(config.items(section))
            elif len(words) == 2 and words[0] == "profile":
                profiles[words[1]] = dict(config.items(section))
            elif len(words) == 2 and words[0] == "sso-session":
                sessions[words[1]] = dict(config.items(section))
    if creds is not None:
        for section in creds.sections():
            body = profiles.setdefault(section, {})
            if creds.has_option(section, "aws_access_key_id"):
                body.setdefault("\0static", "1")
    proposals = []
    notes: list[str] = []
    for aws_name, body in profiles.items():
        if _runs_tokend(body) or aws_name.startswith("tokend-"):
            continue  # written by tokend integrate aws: serving it through tokend would loop
        name = "aws" if aws_name == "default" else profile_name(f"aws-{aws_name}")
        comments = []
        needs_login = False
        group = None
        session = body.get("sso_session")
        if session or body.get("sso_start_url"):
            start = sessions.get(session or "", {}).get("sso_start_url") or body.get("sso_start_url", "")
            which = f"sso-session {session}" if session else "legacy SSO"
            comments.append(f"tokend setup: AWS profile {aws_name!r}, IAM Identity Center ({which}, {start})")
            comments.append("tokend login signs in every profile of that SSO session at once")
            needs_login = not _sso_signed_in(session or start, now)
            group = f"aws-sso:{session or start}"
            what = f"IAM Identity Center ({which})"
        elif "role_arn" in body:
            via = body.get("source_profile") or body.get("credential_source") or "web identity"
            comments.append(f"tokend setup: AWS profile {aws_name!r}, role {body['role_arn']} via {via}")
            what = f"role {body['role_arn']}"
        elif "credential_process" in body:
            comments.append(f"tokend setup: AWS profile {aws_name!r}, credential_process (cached by tokend)")
            what = "credential_process"
        elif "\0static" in body or "aws_access_key_id" in body:
            comments.append(f"tokend setup: AWS profile {aws_name!r}, long-term access keys")
            what = "access keys"
        else:
            continue  # settings only (region, output): nothing to serve
        settings = {"source": "aws", "aws_profile": aws_name}
        summary = f"{name}: AWS profile {aws_name!r}, {what}"
        proposals.append(Proposal(name, settings, tuple(comments), summary, needs_login, group))
    return proposals, notes


# -- Azure CLI ------------------------------------------------------------------------


def azure(environ: Mapping[str, str], which: Which) -> tuple[list[Proposal], list[str]]:
    directory = environ.get("AZURE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".azure")
    doc = _read_json(os.path.join(directory, "azureProfile.json"))
    subs = doc.get("subscriptions") if isinstance(doc, dict) else None
    if not isinstance(subs, list) or not subs:
        return [], []
    chosen = next((s for s in subs if isinstance(s, dict) and s.get("isDefault")), subs[0])
    if not isinstance(chosen, dict):
        return [], []
    user = (chosen.get("user") or {}).get("name", "?") if isinstance(chosen.get("user"), dict) else "?"
    tenant = chosen.get("tenantId", "?")
    comment = f"tokend setup: az login as {user} (tenant {tenant}, subscription {chosen.get('name', '?')})"
    notes = [] if which("az") else ["azure: the az CLI is not on PATH; credential = \"cli\" needs it"]
    summary = f"azure: the Azure CLI's sign-in ({user}, tenant {tenant})"
    return [Proposal("azure", {"source": "azure", "credential": "cli"}, (comment,), summary)], notes


# -- consumers ------------------------------------------------------------------------


def consumers(environ: Mapping[str, str], which: Which, profiles: list[str]) -> list[Offer]:
    """Integrations worth offering; ``profiles`` in order of preference."""
    home = os.path.expanduser("~")
    offers = []
    codex_home = environ.get("CODEX_HOME") or os.path.join(home, ".codex")
    if os.path.isfile(os.path.join(codex_home, "config.toml")) or which("codex"):
        for name in ("google", "azure"):
            if name in profiles:
                why = "the Codex CLI is set up here: a model provider using this profile"
                offers.append(Offer("codex", name, why))
                break
    claude_dir = environ.get("CLAUDE_CONFIG_DIR") or os.path.join(home, ".claude")
    if os.path.isdir(claude_dir) or os.path.isfile(os.path.join(home, ".claude.json")) or which("claude"):
        why = "Claude Code is set up here: apiKeyHelper for a profile serving an API key"
        offers.append(Offer("claude", "PROFILE", why))
    for name in profiles:
        if name.startswith("aws"):
            offers.append(Offer("aws", name, "AWS SDKs and the AWS CLI get the cached credentials"))
            break
    return offers


def detect(
    environ: Mapping[str, str] = os.environ, which: Which = shutil.which, now: float | None = None
) -> Findings:
    import time

    found = Findings()
    for props, notes in (gcloud(environ), aws(environ, now or time.time()), azure(environ, which)):
        found.proposals += props
        found.notes += notes
    return found
