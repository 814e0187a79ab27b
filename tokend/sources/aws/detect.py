"""``tokend setup`` for AWS: the profiles and SSO sessions of the AWS config files (read-only)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shlex
from collections.abc import Mapping

from tokend.sources.setup import Proposal, ini, profile_name, read_json


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
    doc = read_json(path)
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
    config = ini(config_path)
    creds = ini(creds_path)
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
