"""``tokend service install|uninstall|status``: run the daemon as a user service."""

from __future__ import annotations

import os
import shutil
import sys

import click

MANAGERS = ("systemd", "launchd")


def _manager(chosen: str | None) -> str:
    if chosen:
        return chosen
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    from tokend.service import ServiceError

    raise ServiceError(
        f"no supported service manager on {sys.platform}: run `tokend serve` from your session's autostart"
    )


_manager_option = click.option(
    "--manager",
    type=click.Choice(MANAGERS),
    default=None,
    hidden=True,
    help="service manager (default: launchd on macOS, systemd elsewhere)",
)
_dry_run_option = click.option(
    "--dry-run", "-n", is_flag=True, help="print every file and command instead of writing and running them"
)


def register(cli: click.Group) -> None:
    @cli.group("service")
    def service() -> None:
        """Run the daemon as a user service: systemd socket activation, or launchd on macOS."""

    @service.command("install")
    @_dry_run_option
    @_manager_option
    def install(dry_run: bool, manager: str | None) -> None:
        """Install, enable and start the user service (running it again changes nothing)."""
        from tokend import service as svc

        exe = svc.tokend_executable()
        env = dict(os.environ)
        if _manager(manager) == "launchd":
            from tokend.service import launchd

            steps = launchd.install_plan(exe, home=os.path.expanduser("~"), env=env)
        else:
            from tokend.service import systemd_user

            if not dry_run and shutil.which("systemctl") is None:
                raise svc.ServiceError(
                    "systemctl not found: this system does not run systemd; tokend-print starts "
                    "a daemon on demand, or run `tokend serve` from your session's autostart"
                )
            # Checked before anything is written: a manager that cannot be reached
            # would fail at daemon-reload and leave the units behind.
            problem = systemd_user.manager_problem()
            if problem is not None:
                message = systemd_user.no_manager_message(problem)
                if not dry_run:
                    raise svc.ServiceError(message + "; nothing was written")
                click.echo(f"note: {message}")
            steps = systemd_user.install_plan(exe, unit_dir=systemd_user.user_unit_dir(), env=env)
        svc.apply(steps, dry_run=dry_run, echo=click.echo)
        if not dry_run:
            click.echo("tokend now starts with your session; `tokend service status` shows it")

    @service.command("uninstall")
    @_dry_run_option
    @_manager_option
    def uninstall(dry_run: bool, manager: str | None) -> None:
        """Stop and disable the user service and remove what `install` wrote."""
        from tokend import service as svc

        if _manager(manager) == "launchd":
            from tokend.service import launchd

            steps = launchd.uninstall_plan(home=os.path.expanduser("~"))
        else:
            from tokend.service import systemd_user

            steps = systemd_user.uninstall_plan(unit_dir=systemd_user.user_unit_dir())
        svc.apply(steps, dry_run=dry_run, echo=click.echo)

    @service.command("status")
    @_manager_option
    def status(manager: str | None) -> None:
        """Where the service is installed, whether it is enabled and running, what it runs."""
        from tokend import service as svc

        exe = svc.tokend_executable()
        if _manager(manager) == "launchd":
            from tokend.service import launchd

            lines = launchd.status_lines(exe, home=os.path.expanduser("~"))
        else:
            from tokend.service import systemd_user

            lines = systemd_user.status_lines(exe, unit_dir=systemd_user.user_unit_dir())
        click.echo("\n".join(lines))
