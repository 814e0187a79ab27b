"""``tokend serve``: run the daemon in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.command("serve")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        default=None,
        help="config file (default: $TOKEND_CONFIG or ~/.config/tokend/config.toml)",
    )
    def serve(config_path: Path | None) -> None:
        """Run the daemon in the foreground (systemd and autostart run this)."""
        from tokend.daemon.run import serve as run

        sys.exit(run(config_path))
