"""The ``tokend`` command: one module per command group, one error handler here."""

from __future__ import annotations

import logging
import sys

import click

from tokend import __version__
from tokend.cli import (
    completion,
    control,
    doctor,
    endpoints,
    get,
    inject,
    integrate,
    login,
    secret,
    serve,
    service,
    setup,
)
from tokend.core.errors import EXIT_FAILED, EXIT_USAGE, TokendError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tokend")
def cli() -> None:
    """Cache and refresh cloud credentials; print them for command-based auth."""


for module in (get, serve, control, secret, login, integrate, service, setup, inject, doctor, completion):
    module.register(cli)
endpoints.register(cli)
completion.attach_profile_completion(cli)


def main() -> None:
    """Entry point: maps every TokendError to one stderr line and its exit status."""
    # Log records are the daemon's (its handler comes from tokend.core.logs); a command
    # reports a failure as its one stderr line, not also as a stray warning.
    logging.getLogger("tokend").addHandler(logging.NullHandler())
    try:
        cli.main(prog_name="tokend", standalone_mode=False)
    except TokendError as e:
        click.echo(e.line(), err=True)
        sys.exit(e.exit_status)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        hint = f" (see: {e.ctx.command_path} --help)" if e.ctx else ""
        click.echo(f"tokend: {e.format_message()}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        click.echo(f"tokend: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("tokend: aborted", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(130)
