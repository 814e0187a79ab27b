"""``tokend integrate claude PROFILE --bedrock | --vertex``: Claude Code's own settings for those modes.

Both edit ``settings.json`` (``tokend.integrations.claude.settings_path``),
keeping every other key; its ``env`` block is what Claude Code exports for
itself:

- ``--bedrock``: ``CLAUDE_CODE_USE_BEDROCK=1`` and ``AWS_REGION`` (Claude Code
  does not read the region from ``~/.aws/config``), and ``awsCredentialExport``
  — the command whose output Claude Code reads as AWS credentials, JSON in the
  shape of ``aws sts assume-role`` (``{"Credentials": {"AccessKeyId", …}}``):
  ``tokend-print PROFILE --format aws-sts``. Claude Code runs it again when a
  request fails for expired credentials; the format asks for 16 minutes of life.
- ``--vertex``: ``CLAUDE_CODE_USE_VERTEX=1``, ``CLOUD_ML_REGION`` and
  ``ANTHROPIC_VERTEX_PROJECT_ID``; Claude Code gets its Google token through
  google-auth-library's default chain, which ends at the metadata server:
  ``GCE_METADATA_HOST`` names the daemon's google endpoint, so the profile must
  be ``[endpoints] google`` with a fixed port (that endpoint needs no token: it
  answers only our uid). The chain's earlier links — ``GOOGLE_APPLICATION_CREDENTIALS``
  and gcloud's ADC file — still win when present (README, "Credential endpoints").

The other mode's variables are removed, so the file selects one mode.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

from tokend.core import config as config_mod
from tokend.core.endpoints_config import kind_problem
from tokend.core.errors import ConfigError, UsageError
from tokend.integrations import claude, read_config

CREDENTIAL_EXPORT = "awsCredentialExport"
BEDROCK_ENV = ("CLAUDE_CODE_USE_BEDROCK", "AWS_REGION")
VERTEX_ENV = ("CLAUDE_CODE_USE_VERTEX", "CLOUD_ML_REGION", "ANTHROPIC_VERTEX_PROJECT_ID", "GCE_METADATA_HOST")
#: Claude Code's documented default region for Vertex: the global endpoint.
DEFAULT_VERTEX_REGION = "global"
_REGION = re.compile(r"[a-z][a-z0-9-]{1,62}")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}")


def export_command(profile: str, helper: str) -> str:
    return f"{shlex.quote(helper)} {shlex.quote(profile)} --format aws-sts"


def _load(text: str, where: str) -> dict[str, Any]:
    doc = claude.load_settings(text, where)
    env = doc.get("env", {})
    if not isinstance(env, dict):
        raise ConfigError(f"{where}: env: expected a JSON object")
    return doc


def render_bedrock(text: str, profile: str, helper: str, region: str, *, where: str = "settings.json") -> str:
    """``text`` (Claude Code settings JSON) set up for Bedrock with tokend's credentials."""
    doc = _load(text, where)
    env = {k: v for k, v in doc.get("env", {}).items() if k not in VERTEX_ENV}
    env.update({"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": region})
    doc["env"] = env
    doc[CREDENTIAL_EXPORT] = export_command(profile, helper)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_vertex(
    text: str, project: str, region: str, metadata_host: str, *, where: str = "settings.json"
) -> str:
    """``text`` set up for Vertex AI, the token from the daemon's google endpoint at ``metadata_host``."""
    doc = _load(text, where)
    env = {k: v for k, v in doc.get("env", {}).items() if k not in BEDROCK_ENV}
    env.update(
        {
            "CLAUDE_CODE_USE_VERTEX": "1",
            "CLOUD_ML_REGION": region,
            "ANTHROPIC_VERTEX_PROJECT_ID": project,
            "GCE_METADATA_HOST": metadata_host,
        }
    )
    doc["env"] = env
    doc.pop(CREDENTIAL_EXPORT, None)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def apply(
    mode: str,
    profile: str,
    helper: str,
    *,
    dry_run: bool,
    location: str | None = None,
    project: str | None = None,
) -> str:
    """Write Claude Code's settings for ``mode`` (``bedrock`` or ``vertex``); what was done."""
    config = config_mod.load()
    prof = config.profile(profile)
    path = claude.settings_path()
    before = read_config(path, "Claude Code's settings")
    if mode == "bedrock":
        problem = kind_problem("aws", prof)
        if problem:
            raise UsageError(f"--bedrock: {problem}", profile=profile)
        region = location or _str(prof.options.get("region"))
        if not region:
            raise UsageError(
                "--bedrock: give --location REGION (Claude Code needs AWS_REGION)", profile=profile
            )
        _check(_REGION, region, "--location")
        after = render_bedrock(before, profile, helper, region, where=path)
        summary = f"Bedrock in {region}, {CREDENTIAL_EXPORT} runs {helper} {profile} --format aws-sts"
    else:
        problem = kind_problem("google", prof)
        if problem:
            raise UsageError(f"--vertex: {problem}", profile=profile)
        entry = config.endpoints.get("google")
        if entry is None or entry.profile != profile or not entry.port:
            raise UsageError(
                f'--vertex: serve the profile on a fixed port first: [endpoints] google = "{profile}" '
                "and ports = { google = PORT } in the config, then tokend reload",
                profile=profile,
            )
        from tokend.daemon.endpoints.google import identity_of

        project = project or identity_of(prof.options, os.environ).project
        if not project:
            raise UsageError("--vertex: give --project (the profile names none)", profile=profile)
        _check(_PROJECT, project, "--project")
        region = location or DEFAULT_VERTEX_REGION
        _check(_REGION, region, "--location")
        after = render_vertex(before, project, region, f"127.0.0.1:{entry.port}", where=path)
        summary = (
            f"Vertex AI project {project} in {region}, token from the google endpoint on port {entry.port}"
        )
    if dry_run:
        return f"# {path} would become\n{after}".rstrip("\n")
    if after == before:
        return f"{path}: already set up for {summary}"
    claude._write(path, after)
    return f"{path}: {summary}; start claude to use it"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _check(pattern: re.Pattern[str], value: str, option: str) -> None:
    if not pattern.fullmatch(value):
        raise UsageError(f"{option} {value!r}: not a valid value")
