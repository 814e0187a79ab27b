"""``tokend doctor``: diagnose config, runtime dir, daemon, service, profiles and consumers."""

from __future__ import annotations

import sys

import click


def register(cli: click.Group) -> None:
    @cli.command("doctor")
    @click.option("--fetch", is_flag=True, help="also fetch each profile's credential (never printed)")
    @click.option("--json", "as_json", is_flag=True, help="the checks as JSON")
    def doctor(fetch: bool, as_json: bool) -> None:
        """Check everything tokend needs, one line each with the fix; exit 0 only when all pass."""
        from tokend import ci, doctor
        from tokend.cli import get, integrate
        from tokend.client import fastpath
        from tokend.doctor import consumers, local, profiles

        checks, cfg = local.config_checks()
        checks.append(local.runtime_dir_check())
        checks += local.daemon_checks(cfg)
        checks.append(local.service_check())
        if cfg is not None:
            fetcher = None
            if fetch:
                timeout = fastpath.timeout_from_env()

                def fetcher(profile: str) -> str:
                    # tokend get's semantics: the daemon (autostarted), else daemonless.
                    if ci.daemonless():
                        return get.daemonless(profile, "json", None, False, timeout)
                    return get.via_daemon(profile, "json", None, False, timeout)

            checks += profiles.profile_checks(cfg, fetcher)
        checks += consumers.consumer_checks(integrate.helper_path(), cfg)
        click.echo(doctor.render_json(checks) if as_json else doctor.render_text(checks))
        sys.exit(0 if doctor.all_passed(checks) else 1)
