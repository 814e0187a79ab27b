"""The launchd user agent (macOS): ``~/Library/LaunchAgents/dev.tokend.plist``.

launchd starts ``tokend serve`` at login and restarts it after a crash (not
after ``tokend stop``); the daemon binds its own socket, as it does when
tokend-print starts it. The plist is ``packaging/launchd/dev.tokend.plist``
with the paths filled in.
"""

from __future__ import annotations

import os
import plistlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokend.service import Note, RemoveFile, Run, Step, query, running_daemon_pid, stop_daemon, template
from tokend.service import write_if_changed as _write_if_changed

LABEL = "dev.tokend"
PLIST = f"{LABEL}.plist"


def agents_dir(home: str | None = None) -> Path:
    return Path(home or os.path.expanduser("~")) / "Library" / "LaunchAgents"


def domain(uid: int | None = None) -> str:
    return f"gui/{os.getuid() if uid is None else uid}"


def render(exe: str, home: str, env: Mapping[str, str] | None = None) -> str:
    """The agent's plist for ``exe``, logging to ~/Library/Logs/tokend.log."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("@TOKEND@", exe).replace("@HOME@", home)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    doc = fill(plistlib.loads(template(PLIST).encode()))
    config = (env or {}).get("TOKEND_CONFIG")
    if config:
        doc["EnvironmentVariables"]["TOKEND_CONFIG"] = os.path.abspath(config)
    return plistlib.dumps(doc, sort_keys=False).decode()


def loaded(uid: int | None = None) -> dict[str, str] | None:
    """``launchctl print`` of the agent as key/values (state, pid...); None when not loaded."""
    proc = query(["launchctl", "print", f"{domain(uid)}/{LABEL}"])
    if proc is None or proc.returncode != 0:
        return None
    info: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^\t(\w[\w ]*?) = (.*)$", line)  # top-level keys are indented by one tab
        if m:
            info.setdefault(m.group(1), m.group(2))
    return info


def install_plan(exe: str, *, home: str, env: Mapping[str, str], uid: int | None = None) -> list[Step]:
    path = agents_dir(home) / PLIST
    write = _write_if_changed(path, render(exe, home, env))
    changed = not isinstance(write, Note)
    steps: list[Step] = [write]
    info = loaded(uid)
    if info is None:
        pid = running_daemon_pid()
        if pid is not None:
            steps.append(stop_daemon(pid))
    target = f"{domain(uid)}/{LABEL}"
    if info is not None and changed:
        steps.append(Run(("launchctl", "bootout", target), may_fail=True))
    # A service disabled earlier (launchctl disable) refuses to bootstrap.
    steps.append(Run(("launchctl", "enable", target)))
    if info is None or changed:
        steps.append(Run(("launchctl", "bootstrap", domain(uid), str(path))))
    else:
        steps.append(Note(f"{LABEL} is already loaded ({info.get('state', 'unknown state')})"))
    return steps


def uninstall_plan(*, home: str, uid: int | None = None) -> list[Step]:
    path = agents_dir(home) / PLIST
    steps: list[Step] = []
    if loaded(uid) is not None:
        steps.append(Run(("launchctl", "bootout", f"{domain(uid)}/{LABEL}")))
    if path.exists():
        steps.append(RemoveFile(path))
    if not steps:
        steps.append(Note("tokend is not installed as a launchd agent"))
    return steps


def status_lines(exe: str, *, home: str, uid: int | None = None) -> list[str]:
    path = agents_dir(home) / PLIST
    lines = ["manager: launchd (user agent)"]
    lines.append(f"agent: {path}" if path.exists() else "agent: not installed")
    info = loaded(uid)
    if info is None:
        lines.append(f"{LABEL}: not loaded")
    else:
        state = info.get("state", "unknown")
        pid = info.get("pid")
        lines.append(f"{LABEL}: loaded, {state}" + (f", pid {pid}" if pid else ""))
    if path.exists():
        try:
            program = plistlib.loads(path.read_bytes()).get("ProgramArguments", ["?"])[0]
        except (plistlib.InvalidFileException, ValueError, IndexError):
            program = "?"
        lines.append(f"runs: {program} serve")
        if program != exe:
            lines.append(f"note: this tokend is {exe}; `tokend service install` switches the agent to it")
    return lines
