"""``tokend exec`` and ``tokend env``: credentials into a command's or a CI job's environment."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click

from tokend.ci import envformats, inject
from tokend.core.errors import UsageError

EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 127, 126


def _resolve(texts: tuple[str, ...], timeout: float | None) -> list[inject.Var]:
    specs = [inject.parse_spec(t) for t in texts]
    creds = inject.fetch([s.profile for s in specs], timeout)
    return inject.variables(specs, creds)


def _timeout(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise UsageError("--timeout must be positive")
    return value


def register(cli: click.Group) -> None:
    @cli.command(
        "exec",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )
    @click.option(
        "-e",
        "--env",
        "specs",
        multiple=True,
        metavar="VAR=PROFILE[:FIELD]",
        help="set VAR (repeatable); a bare PROFILE sets its usual variables (AWS_ACCESS_KEY_ID, …)",
    )
    @click.option(
        "--endpoint",
        "endpoints",
        multiple=True,
        metavar="CLOUD=PROFILE",
        help="serve CLOUD's credential endpoint (aws, google, azure) to COMMAND's SDKs from PROFILE",
    )
    @click.option("--mask", is_flag=True, help="replace every injected secret in the output with ***")
    @click.option("--timeout", type=float, help="seconds to wait for each credential (default: profile's)")
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    def exec_(
        specs: tuple[str, ...],
        endpoints: tuple[str, ...],
        mask: bool,
        timeout: float | None,
        command: tuple[str, ...],
    ) -> None:
        """Run COMMAND with credentials in its environment (daemonless; exit status and signals pass through).

        With --endpoint, COMMAND's cloud SDKs get their credentials from local endpoints
        that live as long as COMMAND.

        Examples: tokend exec -e prod -e TOKEN=vertex --mask -- ./deploy.sh ·
        tokend exec --endpoint aws=prod --endpoint google=vertex -- terraform apply
        """
        if not specs and not endpoints:
            raise UsageError("tokend exec needs -e VAR=PROFILE or --endpoint CLOUD=PROFILE")
        if endpoints:
            _exec_with_endpoints(list(command), endpoints, specs, mask, _timeout(timeout))
        found = _resolve(specs, _timeout(timeout))
        env = dict(os.environ)
        env.update({v.name: v.value for v in found})
        argv = list(command)
        if not mask:
            _execvpe(argv, env)
        from tokend.ci import masking

        try:
            status = masking.run_masked(argv, env, inject.secrets(found))
        except FileNotFoundError:
            _fail(argv[0], "command not found", EXIT_NOT_FOUND)
        except PermissionError:
            _fail(argv[0], "permission denied", EXIT_NOT_EXECUTABLE)
        masking.exit_like(status)

    @cli.command("env")
    @click.argument("specs", nargs=-1, required=True, metavar="PROFILE|VAR=PROFILE[:FIELD]...")
    @click.option(
        "--format",
        "-f",
        "fmt",
        type=click.Choice(envformats.FORMATS),
        default="shell",
        show_default=True,
        help="shell (export lines), dotenv, github ($GITHUB_ENV + ::add-mask::), gitlab",
    )
    @click.option("--timeout", type=float, help="seconds to wait for each credential (default: profile's)")
    def env(specs: tuple[str, ...], fmt: str, timeout: float | None) -> None:
        """Print (or, for github, export to later steps) the variables of PROFILEs.

        Example: tokend env prod TOKEN=vertex --format github
        """
        if fmt == "github":
            envformats.github([], os.environ)  # the missing CI variable, before any fetch
        found = _resolve(specs, _timeout(timeout))
        if fmt == "github":
            masks, path = envformats.github(found, os.environ)
            block = envformats.github_env_block(found)  # built before anything is printed
            sys.stdout.write(masks)
            sys.stdout.flush()
            envformats.append(path, block)
            click.echo(f"tokend: {', '.join(v.name for v in found)} set for the next steps", err=True)
            return
        render = envformats.dotenv if fmt == "dotenv" else envformats.shell
        sys.stdout.write(render(found))
        sys.stdout.flush()


def _exec_with_endpoints(
    argv: list[str], endpoints: tuple[str, ...], specs: tuple[str, ...], mask: bool, timeout: float | None
) -> NoReturn:
    """CMD as a child while the endpoints serve it; end as it ended."""
    from tokend.ci import endpoints_exec, masking

    try:
        status = endpoints_exec.run(argv, endpoints, specs, mask=mask, timeout=timeout)
    except FileNotFoundError:
        _fail(argv[0], "command not found", EXIT_NOT_FOUND)
    except PermissionError:
        _fail(argv[0], "permission denied", EXIT_NOT_EXECUTABLE)
    masking.exit_like(status)
    raise AssertionError("exit_like returned")


def _execvpe(argv: list[str], env: dict[str, str]) -> None:
    """Become the command: its exit status and signals are then ours by construction."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        _fail(argv[0], "command not found", EXIT_NOT_FOUND)
    except PermissionError:
        _fail(argv[0], "permission denied", EXIT_NOT_EXECUTABLE)
    except OSError as e:
        _fail(argv[0], e.strerror or str(e), EXIT_NOT_EXECUTABLE)


def _fail(name: str, why: str, status: int) -> NoReturn:
    click.echo(f"tokend: exec: {name}: {why}", err=True)
    sys.exit(status)
