"""``tokend service``: install the daemon as a user service (systemd, or launchd on macOS).

Installing is a *plan*, a list of steps computed from what is on disk and
what the service manager says, then applied; ``--dry-run`` prints the plan
(every file in full, every command) instead. Steps whose result is already
in place are left out, so installing twice changes nothing the second time.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tokend.client import control
from tokend.core import atomicfile
from tokend.core.errors import DaemonUnreachable, TokendError

#: Bound on every service-manager command (they talk to a daemon that may hang).
COMMAND_TIMEOUT = 30.0
#: How long to wait for a daemon we asked to stop before handing its socket over.
STOP_WAIT = 8.0


class ServiceError(TokendError):
    code = "service"


# -- steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: str
    mode: int = 0o644

    def describe(self) -> str:
        return f"write {self.path}"


@dataclass(frozen=True)
class RemoveFile:
    path: Path

    def describe(self) -> str:
        return f"remove {self.path}"


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    #: Failure is expected sometimes (e.g. unloading what is not loaded).
    may_fail: bool = False

    def describe(self) -> str:
        return "run " + shlex.join(self.argv)


@dataclass(frozen=True)
class Call:
    """A step done in Python (stopping a daemon): a description and the function."""

    description: str
    fn: Callable[[], None] = field(compare=False)

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class Note:
    """Something already in place: printed, nothing done."""

    text: str

    def describe(self) -> str:
        return self.text


Step = WriteFile | RemoveFile | Run | Call | Note


def run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a service-manager command with a timeout; ServiceError on failure when ``check``."""
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
    except FileNotFoundError:
        raise ServiceError(f"{argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{shlex.join(argv)} did not finish within {COMMAND_TIMEOUT:g}s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ServiceError(
            f"{shlex.join(argv)} failed (exit {proc.returncode})" + (f": {detail[-1]}" if detail else "")
        )
    return proc


def query(argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    """A read-only question to the service manager; None when it cannot be asked."""
    try:
        return run(argv, check=False)
    except ServiceError:
        return None


def apply(steps: Sequence[Step], *, dry_run: bool, echo: Callable[[str], None]) -> None:
    """Carry out ``steps`` in order, saying what each did; or only say it (``dry_run``)."""
    for step in steps:
        if isinstance(step, Note):
            echo(step.text)
            continue
        if dry_run:
            echo(f"would {step.describe()}")
            if isinstance(step, WriteFile):
                echo(_indent(step.content))
            continue
        if isinstance(step, WriteFile):
            write_file(step.path, step.content, step.mode)
        elif isinstance(step, RemoveFile):
            with contextlib.suppress(FileNotFoundError):
                step.path.unlink()
        elif isinstance(step, Run):
            run(step.argv, check=not step.may_fail)
        else:
            step.fn()
        echo(_past(step))


def _past(step: Step) -> str:
    text = step.describe()
    for verb, done in (("write ", "wrote "), ("remove ", "removed "), ("run ", "ran ")):
        if text.startswith(verb):
            return done + text[len(verb) :]
    return text


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.rstrip("\n").split("\n"))


def write_file(path: Path, content: str, mode: int) -> None:
    """Atomically: a temporary file next to ``path``, then rename."""
    atomicfile.write_text(
        path,
        content,
        mode=mode,
        follow_symlinks=False,
        dir_mode=0o777,  # plain mkdir: umask decides, as for any service directory
        prefix=f".{path.name}.",
        suffix=".tmp",
    )


def write_if_changed(path: Path, content: str, mode: int = 0o644) -> Step:
    try:
        current = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        current = None
    if current == content:
        return Note(f"unchanged {path}")
    return WriteFile(path, content, mode)


# -- shared facts ------------------------------------------------------------------


def template(name: str) -> str:
    """A unit or plist shipped inside the package (copies of systemd/ and packaging/launchd/)."""
    return resources.files("tokend.service").joinpath("data", name).read_text(encoding="utf-8")


def tokend_executable() -> str:
    """The absolute path of the installed ``tokend`` the service should run."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "tokend" and os.path.isfile(argv0):
        # The command being run right now (keeps pipx's ~/.local/bin link, which
        # survives upgrades, rather than the venv path behind it).
        return os.path.abspath(argv0)
    beside = Path(sys.executable).parent / "tokend"  # a venv, pipx, or /usr/bin
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("tokend")
    if found:
        return os.path.abspath(found)
    raise ServiceError(f"cannot find the tokend executable (not beside {sys.executable}, not on PATH)")


def running_daemon_pid() -> int | None:
    """The pid of a daemon answering on the socket, if one does."""
    try:
        pid = control.status().get("pid")
    except (DaemonUnreachable, TokendError, ValueError):
        return None
    return pid if isinstance(pid, int) else None


def stop_daemon(pid: int) -> Call:
    """Stop a daemon started outside the service manager, and wait until it has left."""

    def stop() -> None:
        with contextlib.suppress(DaemonUnreachable):
            control.run("stop")
        deadline = time.monotonic() + STOP_WAIT
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                return  # not ours any more: the pid was reused
            time.sleep(0.05)
        raise ServiceError(f"the running daemon (pid {pid}) did not stop within {STOP_WAIT:g}s")

    return Call(f"stop the daemon running outside the service manager (pid {pid}), so it can take over", stop)
