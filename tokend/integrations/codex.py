"""``tokend integrate codex PROFILE``: a Codex CLI model provider whose token comes from tokend.

Writes ``[model_providers.PROFILE]`` and its ``.auth`` table into
``$CODEX_HOME/config.toml`` (default ``~/.codex/config.toml``), editing the
file with tomlkit so every other table, comment and blank line stays as it
was. Keys the user already set in the provider (``base_url``, ``name``,
headers) are kept; the ``auth`` command and its arguments are always
rewritten to point at this installation's ``tokend-print``.

The auth arguments carry ``--refresh-on-repeat``: Codex re-runs the command
once after a 401 and tokend then hands out a new token (tokend/daemon/repeat.py).
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any

import tomlkit
import tomlkit.items

from tokend.core import atomicfile, config
from tokend.core.errors import ConfigError, UsageError
from tokend.integrations import read_config

#: ``tokend integrate codex`` takes ``--location`` and ``--project`` (Vertex AI).
TAKES_VERTEX = True
_LOCATION = re.compile(r"[a-z][a-z0-9-]{1,62}")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}")


def vertex_base_url(project: str, location: str) -> str:
    """Vertex AI's OpenAI-compatible endpoint for ``project`` in ``location``."""
    # A region has a host of its own; the global location is served by the bare host.
    host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
    return f"https://{host}/v1/projects/{project}/locations/{location}/endpoints/openapi"


#: Vertex AI's endpoint, for the user to fill in (or: --location and --project).
VERTEX_BASE_URL = vertex_base_url("PROJECT", "LOCATION")
OTHER_BASE_URL = "https://YOUR-ENDPOINT.example.com/v1"
#: Azure OpenAI's v1 API (no api-version needed); Foundry resources also serve
#: https://RESOURCE.services.ai.azure.com/openai/v1. Entra tokens for it carry
#: the https://cognitiveservices.azure.com/.default scope (the azure source's default).
AZURE_BASE_URL = "https://YOUR-RESOURCE.openai.azure.com/openai/v1"
#: source -> (provider name, base_url placeholder) for a provider written afresh
PROVIDERS = {
    "google": ("Vertex AI (tokend)", VERTEX_BASE_URL),
    "azure": ("Azure OpenAI (tokend)", AZURE_BASE_URL),
}
PLACEHOLDERS = frozenset({VERTEX_BASE_URL, AZURE_BASE_URL, OTHER_BASE_URL})
REPEAT_FLAG = "--refresh-on-repeat"


def codex_config_path() -> str:
    home = os.environ.get("CODEX_HOME") or os.path.join(os.path.expanduser("~"), ".codex")
    return os.path.join(home, "config.toml")


def apply(
    profile: str, helper: str, *, dry_run: bool, location: str | None = None, project: str | None = None
) -> str:
    """Write the provider for ``profile`` (or, with ``dry_run``, show the change); say what was done.

    ``location`` and ``project`` (a google profile only) write Vertex AI's
    base_url, replacing the one in the file; the project defaults to the
    profile's quota_project.
    """
    path = codex_config_path()
    before = read_config(path, "the Codex config")
    source, quota = _profile_facts(profile)
    base_url = None
    if location is not None or project is not None:
        base_url = _vertex_url(profile, source, location, project or quota)
    after = render(before, profile, helper, source=source, quota_project=quota, base_url=base_url)
    if dry_run:
        diff = difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), path, path + " (new)"
        )
        return "".join(diff) or f"{path}: already up to date"
    if after != before:
        _write(path, after)
    return (
        f"{path}: model provider {profile!r} gets its token from {helper} {profile}\n"
        f'use it with: codex -c model_provider="{profile}" (or set model_provider = "{profile}" in that file)'
        + (
            f"\nedit base_url in [model_providers.{profile}] (now a placeholder)"
            + (", or run this again with --location and --project" if source == "google" else "")
            if _is_placeholder(_base_url(after, profile))
            else ""
        )
    )


def _vertex_url(profile: str, source: str | None, location: str | None, project: str | None) -> str:
    if source != "google":
        raise UsageError(
            f"--location and --project write a Vertex AI base_url: "
            f"{profile!r} is a {source} profile, not google"
        )
    if location is not None and not _LOCATION.fullmatch(location):
        raise UsageError(f"--location {location!r}: expected a Vertex AI location (us-central1, global)")
    if project is not None and not _PROJECT.fullmatch(project):
        raise UsageError(f"--project {project!r}: expected a Google Cloud project ID")
    return vertex_base_url(project or "PROJECT", location or "LOCATION")


def _is_placeholder(url: str | None) -> bool:
    return url in PLACEHOLDERS or (url is not None and ("/PROJECT/" in url or "/LOCATION/" in url))


def render(
    text: str,
    profile: str,
    helper: str,
    *,
    source: str | None = None,
    quota_project: str | None = None,
    base_url: str | None = None,
) -> str:
    """``text`` (a Codex config) with the provider for ``profile`` added or updated.

    ``base_url`` replaces the provider's; without it one the user set is kept.
    """
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise ConfigError(f"{codex_config_path()}: invalid TOML: {e}") from None
    providers = _table(doc, "model_providers", super_table=True)
    provider = _table(providers, profile)
    name, placeholder = PROVIDERS.get(source or "", (f"{profile} (tokend)", OTHER_BASE_URL))
    if "name" not in provider:
        provider["name"] = name
    if base_url is not None:
        provider["base_url"] = base_url
    elif "base_url" not in provider:
        provider["base_url"] = placeholder
    provider["wire_api"] = "responses"  # the only wire API current Codex speaks
    for stale in ("env_key", "experimental_bearer_token", "requires_openai_auth"):
        if stale in provider:  # would compete with the auth command
            del provider[stale]
    if quota_project:
        # Vertex bills a user's calls to this project (gcloud's quota project).
        headers = _table(provider, "http_headers", inline=True)
        headers["x-goog-user-project"] = quota_project
    auth = _table(provider, "auth")
    auth["command"] = helper
    auth["args"] = [profile, REPEAT_FLAG]
    return tomlkit.dumps(doc)


def _table(parent: Any, key: str, *, super_table: bool = False, inline: bool = False) -> Any:
    existing = parent.get(key)
    if isinstance(existing, (tomlkit.items.Table, tomlkit.items.InlineTable)):
        return existing
    if existing is not None:
        raise ConfigError(f"{codex_config_path()}: {key} is not a table")
    table = tomlkit.inline_table() if inline else tomlkit.table(is_super_table=super_table or None)
    parent[key] = table
    return parent[key]


def _base_url(text: str, profile: str) -> str | None:
    value = tomlkit.parse(text).get("model_providers", {}).get(profile, {}).get("base_url")
    return str(value) if value is not None else None


def _profile_facts(profile: str) -> tuple[str | None, str | None]:
    """(source name, quota project) of the tokend profile, as far as the config tells."""
    prof = config.load().profile(profile)
    quota = prof.options.get("quota_project") if prof.source == "google" else None
    return prof.source, str(quota) if quota else None


def _write(path: str, text: str) -> None:
    """Atomically, keeping the file's mode (0600 for a new file: it may hold keys)."""
    atomicfile.write_text(path, text, keep_mask=0o7777, follow_symlinks=False, prefix=".config.toml.")
