"""``tokend integrate CONSUMER PROFILE``: write a consumer's config to use tokend-print.

Each consumer lives in ``tokend/integrations/<name>.py`` and exposes
``apply(profile: str, helper: str, *, dry_run: bool) -> str``: it edits the
consumer's config (preserving the rest of it) and returns what it did.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys

import click

from tokend.core import config

#: consumer name -> module implementing it
CONSUMERS: dict[str, str] = {
    "aws": "tokend.integrations.aws",
    "claude": "tokend.integrations.claude",
    "codex": "tokend.integrations.codex",
    "git": "tokend.integrations.git",
    "kubectl": "tokend.integrations.kubectl",
}


def helper_path() -> str:
    """Absolute path of tokend-print: consumers such as Codex do not expand ``~`` or PATH reliably."""
    # Beside the running tokend, else beside its interpreter (python -m tokend, a venv's bin).
    for directory in (os.path.dirname(os.path.realpath(sys.argv[0])), os.path.dirname(sys.executable)):
        here = os.path.join(directory, "tokend-print")
        if os.access(here, os.X_OK):
            return here
    found = shutil.which("tokend-print")
    return os.path.realpath(found) if found else "tokend-print"


def register(cli: click.Group) -> None:
    @cli.command("integrate")
    @click.argument("consumer", type=click.Choice(sorted(CONSUMERS)) if CONSUMERS else str)
    @click.argument("profile")
    @click.option("--dry-run", is_flag=True, help="print the change instead of writing it")
    @click.option("--host", help="git: the host whose credentials PROFILE serves (e.g. github.com)")
    @click.option("--location", help="codex, google profile: Vertex AI location (us-central1, global, ...)")
    @click.option("--project", help="codex, google profile: Vertex AI project (default: quota_project)")
    @click.option(
        "--vertex", is_flag=True, help="claude: use Vertex AI (PROFILE: the [endpoints] google one)"
    )
    @click.option("--bedrock", is_flag=True, help="claude: use Amazon Bedrock (PROFILE: AWS credentials)")
    def integrate(
        consumer: str,
        profile: str,
        dry_run: bool,
        host: str | None,
        location: str | None,
        project: str | None,
        vertex: bool,
        bedrock: bool,
    ) -> None:
        """Point CONSUMER (e.g. codex, claude, aws, kubectl, git) at PROFILE."""
        config.load().profile(profile)  # unknown profile: exit 2 before touching anything
        if vertex or bedrock:
            if consumer != "claude" or (vertex and bedrock):
                raise click.UsageError("--vertex or --bedrock: one of them, for claude only")
            from tokend.integrations import claude_modes

            mode = "vertex" if vertex else "bedrock"
            done = claude_modes.apply(
                mode, profile, helper_path(), dry_run=dry_run, location=location, project=project
            )
            click.echo(done)
            return
        module = importlib.import_module(CONSUMERS[consumer])
        extra = {}
        if host is not None:
            if not getattr(module, "TAKES_HOST", False):
                raise click.UsageError(f"--host applies to git only, not to {consumer}")
            extra["host"] = host
        for option, value in (("location", location), ("project", project)):
            if value is not None:
                if not getattr(module, "TAKES_VERTEX", False):
                    raise click.UsageError(f"--{option} applies to codex only, not to {consumer}")
                extra[option] = value
        click.echo(module.apply(profile, helper_path(), dry_run=dry_run, **extra))
