"""``tokend setup`` for Google: gcloud's Application Default Credentials and accounts (read-only)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Mapping
from typing import Any

from tokend.sources.google.adc import gcloud_active_config, gcloud_config_dir, gcloud_config_file
from tokend.sources.setup import Proposal, ini, read_json


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
    adc = read_json(adc_path)
    active = ""
    with contextlib.suppress(OSError), open(gcloud_active_config(environ), encoding="utf-8") as f:
        active = f.read().strip()
    props = ini(gcloud_config_file(active or "default", environ))
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
