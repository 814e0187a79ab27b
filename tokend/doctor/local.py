"""Checks of this machine's tokend: config, runtime dir, daemon, service manager."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tokend import __version__
from tokend.client import control, paths, rundir
from tokend.core import config
from tokend.core.durations import format_duration
from tokend.core.errors import ConfigError, DaemonUnreachable, TokendError
from tokend.doctor import Check, failed, info, ok

AUTOSTART = "tokend-print starts the daemon on demand"


def config_checks() -> tuple[list[Check], config.Config | None]:
    """The config's path, owner and validity; the loaded config when it is valid."""
    path = config.default_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        if os.environ.get("TOKEND_CONFIG"):
            return [
                failed(
                    "config",
                    f"TOKEND_CONFIG names {path}, which does not exist",
                    "create it, or unset TOKEND_CONFIG",
                )
            ], None
        cfg = config.load()
        detail = f"no file at {path}: the built-in demo profile is used (`tokend setup` writes one)"
        return [ok("config", detail)], cfg
    except OSError as e:
        return [failed("config", f"{path}: {e.strerror}", f"make {path} readable by you")], None
    checks: list[Check] = []
    if st.st_uid != os.getuid():
        # The daemon runs commands the config names: only its owner may decide them.
        checks.append(
            failed("config", f"{path} is owned by uid {st.st_uid}, not by you", f"sudo chown $USER {path}")
        )
    try:
        cfg = config.load(path)
    except ConfigError as e:
        writable = "writable by group or others" in e.message
        fix = f"chmod go-w {path}" if writable else f"edit {path}"
        return [*checks, failed("config", e.message.split(": chmod ")[0], fix)], None
    if not checks:
        count = len(cfg.profiles)
        checks.append(ok("config", f"{path}: valid, {count} profile{'s' if count != 1 else ''}"))
    return checks, cfg


def runtime_dir_check() -> Check:
    """The runtime dir is ours, a real directory, closed to others (what every client checks)."""
    path = paths.runtime_dir()
    if not os.path.lexists(path):
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            return failed("runtime dir", f"{parent} does not exist", f"mkdir -m 700 -p {parent}")
        return ok("runtime dir", f"{path} does not exist yet: created with mode 0700 on first use")
    try:
        rundir.prepare_dir(path)  # exists: only checks, creates nothing
    except rundir.RuntimeDirError as e:
        mode_only = "lets others in" in e.message
        fix = (
            f"chmod 700 {path}" if mode_only else f"remove {path} (as its owner or root); tokend recreates it"
        )
        return failed("runtime dir", e.message.split(" (chmod ")[0], fix)
    return ok("runtime dir", f"{path}: yours, mode 0700")


def daemon_checks(cfg: config.Config | None) -> list[Check]:
    """Whether a daemon answers, which version it runs, which config it serves."""
    try:
        doc = control.status()
    except DaemonUnreachable:
        return [info("daemon", f"not running: {AUTOSTART} (or: tokend service install)")]
    except rundir.RuntimeDirError:
        # Clients refuse to talk through an unsafe runtime dir: its own check says why.
        return [info("daemon", "not asked: the runtime dir is not safe (see above)")]
    except (TokendError, ValueError) as e:
        return [
            failed("daemon", f"does not answer status: {e}", "tokend stop; the next request starts a new one")
        ]
    pid = doc.get("pid")
    version = doc.get("version")
    restart = (
        "tokend stop (the next request starts this version; under systemd: systemctl --user restart tokend)"
    )
    checks: list[Check] = []
    if version != __version__:
        runs = f"tokend {version}" if version else "a tokend older than this one (no version in its status)"
        checks.append(failed("daemon", f"pid {pid} runs {runs}; installed is {__version__}", restart))
    else:
        uptime = doc.get("uptime")
        up = f", up {format_duration(float(uptime))}" if isinstance(uptime, (int, float)) else ""
        checks.append(ok("daemon", f"pid {pid}, tokend {version}{up}"))
    if cfg is not None:
        ours = str(cfg.path or "built-in default")
        if doc.get("config") != ours:
            checks.append(
                failed(
                    "daemon config",
                    f"the daemon serves {doc.get('config')}, this environment's config is {ours}",
                    "tokend stop, then start it from this environment (or set TOKEND_CONFIG alike)",
                )
            )
    return checks


def service_check() -> Check:
    """The user service: installed, enabled, running this tokend (systemd; launchd on macOS)."""
    if sys.platform == "darwin":
        from tokend.service import ServiceError, launchd, tokend_executable

        try:
            lines = launchd.status_lines(tokend_executable(), home=os.path.expanduser("~"))
        except ServiceError as e:
            return info("service", str(e))
        return info("service", "; ".join(lines[1:]))
    if not sys.platform.startswith("linux") or shutil.which("systemctl") is None:
        return info("service", f"no systemd: {AUTOSTART}")
    from tokend.service import systemd_user

    states = systemd_user.show()
    if states is None:
        return info("service", f"no systemd user manager reachable: {AUTOSTART}")
    sock = states.get(systemd_user.SOCKET, systemd_user.State())
    service = states.get(systemd_user.SERVICE, systemd_user.State())
    if sock.fragment is None:
        return info("service", f"not installed: {AUTOSTART} (or: tokend service install)")
    exe = _exec_start(service.fragment)
    if exe is not None and not os.access(exe, os.X_OK):
        return failed("service", f"tokend.service runs {exe}, which is not there", "tokend service install")
    if sock.unit_file_state != "enabled" or sock.active_state != "active":
        state = f"{sock.unit_file_state or 'not enabled'}, {sock.active_state or 'unknown'}"
        return failed("service", f"tokend.socket is {state}", "tokend service install")
    return ok(
        "service", f"tokend.socket enabled and listening; tokend.service {service.active_state} ({exe})"
    )


def _exec_start(fragment: str | None) -> str | None:
    """The program ``ExecStart=`` runs in the unit file ``fragment``."""
    if not fragment:
        return None
    try:
        text = Path(fragment).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            words = line.removeprefix("ExecStart=").split()
            return words[0].strip('"') if words else None
    return None
