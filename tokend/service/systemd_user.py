"""The systemd user units: ``~/.config/systemd/user/tokend.{socket,service}``.

The units are the ones in the source tree's ``systemd/`` directory (shipped
in the package), with ``ExecStart`` pointing at the tokend being run. When a
distribution package already installed them for this very executable (in
``/usr/lib/systemd/user``), nothing is written: they are only enabled.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tokend.service import (
    Note,
    RemoveFile,
    Run,
    Step,
    query,
    running_daemon_pid,
    stop_daemon,
    template,
    write_if_changed,
)

SOCKET = "tokend.socket"
SERVICE = "tokend.service"
UNITS = (SOCKET, SERVICE)
#: ExecStart in the shipped unit (the distribution packages' path).
PACKAGED_EXEC = "/usr/bin/tokend"
#: Where distribution packages and administrators put user units.
SYSTEM_UNIT_DIRS = (
    Path("/usr/lib/systemd/user"),
    Path("/usr/local/lib/systemd/user"),
    Path("/etc/systemd/user"),
)

Getenv = Callable[[str], "str | None"]


def user_unit_dir(getenv: Getenv = os.environ.get) -> Path:
    base = getenv("XDG_CONFIG_HOME") or os.path.join(getenv("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "systemd" / "user"


def _exec_word(path: str) -> str:
    """``path`` as one word of a unit's command line: specifiers escaped, quoted if needed."""
    word = path.replace("%", "%%")
    if re.search(r'[\s"\'\\]', word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def render_service(exe: str, env: Mapping[str, str] | None = None) -> str:
    """tokend.service with ExecStart on ``exe`` (and the config the installer was using)."""
    text = template(SERVICE)
    line = f"ExecStart={PACKAGED_EXEC} serve\n"
    assert line in text, "the shipped tokend.service lost its ExecStart line"
    new = f"ExecStart={_exec_word(exe)} serve\n"
    config = (env or {}).get("TOKEND_CONFIG")
    if config:
        # Command-line users who point tokend at another config expect the service to follow.
        new += "Environment=" + _exec_word("TOKEND_CONFIG=" + os.path.abspath(config)) + "\n"
    return text.replace(line, new)


def render_socket() -> str:
    return template(SOCKET)


@dataclass(frozen=True)
class State:
    """What ``systemctl --user show`` says about one unit (None: could not ask)."""

    unit_file_state: str | None = None
    active_state: str | None = None
    sub_state: str | None = None
    main_pid: int = 0
    fragment: str | None = None


def show(units: tuple[str, ...] = UNITS) -> dict[str, State] | None:
    """The manager's view of ``units``, or None when there is no user manager to ask."""
    props = "Id,UnitFileState,ActiveState,SubState,MainPID,FragmentPath"
    proc = query(["systemctl", "--user", "show", "--property", props, *units])
    if proc is None or proc.returncode != 0:
        return None
    states: dict[str, State] = {}
    for block in proc.stdout.strip().split("\n\n"):
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in kv:
            pid = kv.get("MainPID", "0")
            states[kv["Id"]] = State(
                unit_file_state=kv.get("UnitFileState") or None,
                active_state=kv.get("ActiveState") or None,
                sub_state=kv.get("SubState") or None,
                main_pid=int(pid) if pid.isdigit() else 0,
                fragment=kv.get("FragmentPath") or None,
            )
    return states


def manager_problem() -> str | None:
    """None when a user manager answers ``systemctl --user``; else why not, in systemctl's words."""
    proc = query(["systemctl", "--user", "show-environment"])
    if proc is None:
        return "systemctl could not be run"
    if proc.returncode == 0:
        return None
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    return detail[-1] if detail else f"exit {proc.returncode}"


def no_manager_message(problem: str) -> str:
    """What to do without a user manager: get one, or do without the service."""
    return (
        f"no systemd user manager is reachable (systemctl --user: {problem}). To get one: "
        "`loginctl enable-linger $USER` and log in again (a shell from su or sudo reaches it "
        "with XDG_RUNTIME_DIR=/run/user/$(id -u)); or go without the service: tokend-print "
        "starts a daemon on demand (autostart)"
    )


def packaged_units(exe: str, dirs: tuple[Path, ...] = SYSTEM_UNIT_DIRS) -> Path | None:
    """The directory of distribution-installed units that already run ``exe``."""
    for d in dirs:
        service = d / SERVICE
        try:
            text = service.read_text(encoding="utf-8")
        except OSError:
            continue
        if (d / SOCKET).is_file() and f"ExecStart={_exec_word(exe)} serve\n" in text:
            return d
    return None


def install_plan(
    exe: str,
    *,
    unit_dir: Path,
    env: Mapping[str, str],
    system_dirs: tuple[Path, ...] = SYSTEM_UNIT_DIRS,
) -> list[Step]:
    steps: list[Step] = []
    changed = False
    packaged = packaged_units(exe, system_dirs) if not env.get("TOKEND_CONFIG") else None
    if packaged is not None and not any((unit_dir / u).exists() for u in UNITS):
        steps.append(Note(f"using the units installed in {packaged} (they run {exe})"))
    else:
        for name, content in ((SOCKET, render_socket()), (SERVICE, render_service(exe, env))):
            step = write_if_changed(unit_dir / name, content)
            changed = changed or not isinstance(step, Note)
            steps.append(step)
    states = show()
    socket_active = states is not None and states.get(SOCKET, State()).active_state == "active"
    # A daemon started by hand or by tokend-print's autostart holds the socket
    # path: stop it first (asking an active socket would start the service).
    pid = None if socket_active else running_daemon_pid()
    if pid is not None:
        steps.append(stop_daemon(pid))
    if changed or states is None or states.get(SOCKET, State()).fragment is None:
        steps.append(Run(("systemctl", "--user", "daemon-reload")))
    steps.append(Run(("systemctl", "--user", "enable", "--now", SOCKET)))
    service = states.get(SERVICE, State()) if states else State()
    if changed and service.active_state == "active":
        # A new ExecStart or hardening takes effect now, not at the next login.
        steps.append(Run(("systemctl", "--user", "try-restart", SERVICE)))
    return steps


def _enable_links(unit_dir: Path) -> list[Path]:
    """The links ``systemctl enable`` made for our units (``*.wants/``, ``*.requires/``)."""
    dirs = sorted([*unit_dir.glob("*.wants"), *unit_dir.glob("*.requires")])
    return [d / u for d in dirs for u in UNITS if (d / u).is_symlink()]


def uninstall_plan(*, unit_dir: Path) -> list[Step]:
    ours = [unit_dir / u for u in UNITS if (unit_dir / u).exists()]
    states = show()
    if states is None:
        # Without a manager, disable/daemon-reload can only fail (systemctl has no
        # offline mode for --user): remove the files and the enable links ourselves.
        files = [*_enable_links(unit_dir), *ours]
        if not files:
            return [Note("tokend is not installed as a systemd user service")]
        problem = manager_problem() or "no answer"
        return [
            Note(f"note: no systemd user manager is reachable ({problem}): removing the files only"),
            *(RemoveFile(p) for p in files),
        ]
    if states is None:  # no manager to ask: disable what we installed, if anything
        known = enabled = bool(ours)
    else:
        known = any(s.fragment for s in states.values())
        enabled = any(
            s.unit_file_state not in (None, "disabled", "static") or s.active_state not in (None, "inactive")
            for s in states.values()
        )
    steps: list[Step] = []
    if known and enabled:
        steps.append(Run(("systemctl", "--user", "disable", "--now", *UNITS), may_fail=states is None))
    steps += [RemoveFile(p) for p in ours]
    if ours:
        steps.append(Run(("systemctl", "--user", "daemon-reload")))
    if not steps:
        steps.append(Note("tokend is not installed as a systemd user service"))
    return steps


def status_lines(exe: str, *, unit_dir: Path) -> list[str]:
    lines = ["manager: systemd (user units)"]
    ours = [unit_dir / u for u in UNITS if (unit_dir / u).exists()]
    states = show()
    if states is None:
        lines.append("systemctl --user: no user service manager reachable (is this a login session?)")
    for unit in UNITS:
        st = (states or {}).get(unit, State())
        where = st.fragment or (str(unit_dir / unit) if (unit_dir / unit) in ours else "not installed")
        if states is None:
            lines.append(f"{unit}: {where}")
            continue
        active = st.active_state or "unknown"
        if st.sub_state and st.sub_state != active:
            active += f" ({st.sub_state})"
        if unit == SERVICE and st.main_pid:
            active += f", pid {st.main_pid}"
        if unit == SERVICE and st.active_state == "inactive":
            active += ", starts on the first request"
        lines.append(f"{unit}: {st.unit_file_state or 'not installed'}, {active} — {where}")
    service = unit_dir / SERVICE
    if service in ours:
        exec_line = next(
            (ln for ln in service.read_text().splitlines() if ln.startswith("ExecStart=")), "ExecStart=?"
        )
        lines.append(f"runs: {exec_line.removeprefix('ExecStart=')}")
        if exec_line != f"ExecStart={_exec_word(exe)} serve":
            lines.append(f"note: this tokend is {exe}; `tokend service install` switches the unit to it")
    return lines
