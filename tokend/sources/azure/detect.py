"""``tokend setup`` for Azure: the Azure CLI's sign-in (read-only)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tokend.sources.setup import Proposal, Which, read_json


def azure(environ: Mapping[str, str], which: Which) -> tuple[list[Proposal], list[str]]:
    directory = environ.get("AZURE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".azure")
    doc = read_json(os.path.join(directory, "azureProfile.json"))
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
