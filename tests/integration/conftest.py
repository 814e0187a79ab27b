"""Fixtures for tests that run the installed ``tokend`` and ``tokend-print`` as real processes.

Every test gets a :class:`Sandbox`: a short private directory under /tmp (unix
socket paths are limited to 107 bytes) holding its own runtime dir, config, home
and a counting upstream command. Nothing of the real user's is read or written.
Every process a test starts, directly or through autostart, is ended by its
pid at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.aws_moto import MotoServer, moto_server

BIN = Path(sys.executable).parent
TOKEND = str(BIN / "tokend")
TOKEND_PRINT = str(BIN / "tokend-print")

#: Environment variables of the developer's session that must not leak into a test.
_SCRUBBED = re.compile(
    r"^(TOKEND_|XDG_|DBUS_|GNOME_KEYRING|PYTHON_KEYRING|KUBERNETES_|JOURNAL_STREAM|NOTIFY_|LISTEN_)"
)

#: The fake upstream: one line appended to the count file per invocation, then
#: a JSON token with ``expires_in`` (or a failure / a hang, per the mode file).
UPSTREAM = textwrap.dedent(
    """\
    import json, os, secrets, sys, time

    count_file, mode_file, name, expires_in, delay = sys.argv[1:6]
    try:
        with open(mode_file) as f:
            mode = f.read().strip() or "ok"
    except FileNotFoundError:
        mode = "ok"
    token = name + "-" + secrets.token_hex(8)
    fd = os.open(count_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, ("%s %s %d\\n" % (mode, token, os.getpid())).encode())
    os.close(fd)
    if mode == "hang":
        time.sleep(3600)
    if mode == "fail":
        sys.stderr.write("upstream exploded\\n")
        sys.exit(3)
    time.sleep(float(delay))
    sys.stdout.write(json.dumps({"token": token, "expires_in": float(expires_in)}) + "\\n")
    """
)


@dataclass
class Result:
    status: int
    out: str
    err: str
    elapsed: float

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@dataclass
class Upstream:
    """A counting ``command`` source for one profile."""

    name: str
    count_file: Path
    mode_file: Path
    argv: list[str]

    def set_mode(self, mode: str) -> None:
        """``ok``, ``fail`` (exit 3) or ``hang`` (sleep an hour)."""
        self.mode_file.write_text(mode + "\n")

    def lines(self) -> list[list[str]]:
        try:
            text = self.count_file.read_text()
        except FileNotFoundError:
            return []
        return [line.split() for line in text.splitlines() if line.strip()]

    @property
    def fetches(self) -> int:
        return len(self.lines())

    def tokens(self) -> list[str]:
        """Tokens handed out, in order (successful invocations only)."""
        return [parts[1] for parts in self.lines() if parts[0] == "ok"]

    def pids(self) -> list[int]:
        return [int(parts[2]) for parts in self.lines()]


class Daemon:
    """A ``tokend serve`` this test started; stopped by pid."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, socket_path: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.log = log
        self.socket_path = socket_path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, grace: float = 8.0) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"daemon log never showed {needle!r}:\n{self.log_text()}")


def ping(socket_path: str, timeout: float = 1.0) -> bool:
    """True when a daemon answers ``ping`` on ``socket_path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"ping\n")
            return s.recv(64).startswith(b"0 ")
    except OSError:
        return False


def _proc_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        if _is_zombie(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line.rpartition(")")[2].split()[0] == "Z"


class Sandbox:
    """One test's private world: runtime dir, config, home, upstream commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "r"  # XDG_RUNTIME_DIR
        self.config_home = root / "c"  # XDG_CONFIG_HOME
        self.home = root / "h"
        self.config_path = self.config_home / "tokend" / "config.toml"
        for d in (self.runtime, self.config_home / "tokend", self.home):
            d.mkdir(parents=True, mode=0o700)
        os.chmod(self.runtime, 0o700)
        self.upstream_script = root / "upstream.py"
        self.upstream_script.write_text(UPSTREAM)
        self.daemons: list[Daemon] = []
        self.extra_pids: list[int] = []

    # -- paths --------------------------------------------------------------

    @property
    def rundir(self) -> Path:
        """tokend's own directory inside the runtime dir."""
        return self.runtime / "tokend"

    @property
    def socket_path(self) -> str:
        return str(self.rundir / "tokend.sock")

    # -- environment and config ---------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None, **kw: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _SCRUBBED.match(k)}
        env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime),
            XDG_CONFIG_HOME=str(self.config_home),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            TOKEND_CONFIG=str(self.config_path),
            LC_ALL="C.UTF-8",
        )
        env.update(extra or {})
        env.update(kw)
        return env

    def write_config(self, text: str, mode: int = 0o600, path: Path | None = None) -> Path:
        path = path or self.config_path
        tmp = path.with_name(path.name + ".new")
        tmp.write_text(textwrap.dedent(text))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        return path

    def upstream(self, name: str, *, expires_in: float = 3600, delay: float = 0.0) -> Upstream:
        count = self.root / f"{name}.count"
        mode = self.root / f"{name}.mode"
        argv = [
            sys.executable,
            "-I",
            "-S",
            str(self.upstream_script),
            str(count),
            str(mode),
            name,
            repr(float(expires_in)),
            repr(float(delay)),
        ]
        return Upstream(name=name, count_file=count, mode_file=mode, argv=argv)

    def command_profile(self, name: str, up: Upstream, **settings: object) -> str:
        """TOML for ``[profiles.NAME]`` with ``source = "command"`` running ``up``."""
        lines = [f"[profiles.{name}]", 'source = "command"', f"command = {json.dumps(up.argv)}"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        return "\n".join(lines) + "\n"

    # -- running things -----------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 30,
        input: str | None = None,
    ) -> Result:
        start = time.monotonic()
        proc = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else self.env(),
            input=input.encode() if input is not None else None,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
            time.monotonic() - start,
        )

    def print_(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> Result:
        return self.run([TOKEND_PRINT, *args], env=env, timeout=timeout)

    def tokend(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30, input: str | None = None
    ) -> Result:
        return self.run([TOKEND, *args], env=env, timeout=timeout, input=input)

    def run_many(
        self, argvs: Sequence[Sequence[str]], env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> list[Result]:
        """Start every argv at once (output to files, so no pipe per child), then wait for all."""
        env = dict(env) if env is not None else self.env()
        outdir = Path(tempfile.mkdtemp(dir=self.root, prefix="many"))
        procs = []
        start = time.monotonic()
        for i, argv in enumerate(argvs):
            with open(outdir / f"{i}.out", "wb") as out, open(outdir / f"{i}.err", "wb") as err:
                procs.append(
                    subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
                )
        deadline = start + timeout
        results = []
        for i, proc in enumerate(procs):
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                raise
            results.append(
                Result(
                    proc.returncode,
                    (outdir / f"{i}.out").read_text(errors="replace"),
                    (outdir / f"{i}.err").read_text(errors="replace"),
                    time.monotonic() - start,
                )
            )
        return results

    def start_daemon(self, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Daemon:
        """``tokend serve`` in the background; returns once it answers ``ping``."""
        log = self.root / f"daemon{len(self.daemons)}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(
                [TOKEND, "serve", *args],
                env=dict(env) if env is not None else self.env(),
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        daemon = Daemon(proc, log, self.socket_path)
        self.daemons.append(daemon)
        deadline = time.monotonic() + 15
        while not ping(self.socket_path):
            if proc.poll() is not None:
                raise AssertionError(f"tokend serve exited {proc.returncode}:\n{daemon.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"tokend serve did not answer within 15s:\n{daemon.log_text()}")
            time.sleep(0.02)
        return daemon

    def status(self, env: Mapping[str, str] | None = None) -> dict[str, object]:
        r = self.tokend("status", "--json", env=env)
        assert r.status == 0, r
        doc: dict[str, object] = json.loads(r.out)
        return doc

    def profile_status(self, name: str) -> dict[str, object]:
        profiles = self.status()["profiles"]
        assert isinstance(profiles, list)
        for row in profiles:
            if row["profile"] == name:
                return dict(row)
        raise AssertionError(f"no profile {name} in status")

    def daemon_pids(self) -> list[int]:
        """Live ``tokend serve`` processes whose runtime dir is this sandbox's."""
        pids = []
        for pid in _all_pids():
            cmd = _proc_cmdline(pid)
            if not any(a.endswith("tokend") for a in cmd) or "serve" not in cmd or _is_zombie(pid):
                continue
            if _proc_environ(pid).get("XDG_RUNTIME_DIR") == str(self.runtime):
                pids.append(pid)
        return pids

    def upstream_pids(self) -> list[int]:
        """Live upstream commands of this sandbox (they run in sessions of their own)."""
        script = str(self.upstream_script)
        return [pid for pid in _all_pids() if script in _proc_cmdline(pid) and not _is_zombie(pid)]

    def cleanup(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        # Daemons started by autostart, then leftover upstream commands: by pid.
        for pid in self.daemon_pids():
            _kill_pid(pid)
        for pid in [*self.extra_pids, *self.upstream_pids()]:
            if Path(f"/proc/{pid}").exists():
                _kill_pid(pid)
        shutil.rmtree(self.root, ignore_errors=True)


def cache_roots() -> list[Path]:
    """Where scripts/test's ``.cache/`` may be: this checkout and, for a git worktree, its main checkout."""
    repo = Path(__file__).resolve().parents[2]
    found = [repo]
    common = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
    )
    if common.returncode == 0 and common.stdout.strip():
        main = Path(common.stdout.strip()).parent
        if main != repo:
            found.append(main)
    return found


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    root = Path(tempfile.mkdtemp(prefix="td", dir="/tmp"))
    box = Sandbox(root)
    try:
        yield box
    finally:
        box.cleanup()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[object]:
    """For tests that need more than one sandbox."""
    boxes: list[Sandbox] = []

    def make() -> Sandbox:
        box = Sandbox(Path(tempfile.mkdtemp(prefix="td", dir="/tmp")))
        boxes.append(box)
        return box

    try:
        yield make
    finally:
        for box in boxes:
            box.cleanup()


# -- a private Secret Service ---------------------------------------------------


@dataclass
class SecretService:
    env: dict[str, str]
    pids: list[int]


def _keyring_missing() -> str | None:
    for exe in ("dbus-daemon", "gnome-keyring-daemon"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (apt-get install dbus dbus-x11 gnome-keyring)"
    return None


@pytest.fixture
def secret_service(sandbox: Sandbox) -> Iterator[SecretService]:
    """A private D-Bus session bus with gnome-keyring's Secret Service, unlocked."""
    missing = _keyring_missing()
    if missing:
        if os.environ.get("TOKEND_REQUIRE_KEYRING") == "1":
            pytest.fail(f"TOKEND_REQUIRE_KEYRING=1 but {missing}")
        pytest.skip(missing)
    env = sandbox.env()
    pids: list[int] = []
    keyring: subprocess.Popen[bytes] | None = None
    try:
        bus = subprocess.run(
            ["dbus-daemon", "--session", "--fork", "--nopidfile", "--print-address=1", "--print-pid=1"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=True,
        )
        address, pid = bus.stdout.decode().split()[:2]
        pids.append(int(pid))
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        keyring = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=open(sandbox.root / "gnome-keyring.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        pids.append(keyring.pid)
        assert keyring.stdin is not None
        keyring.stdin.write(b"test-keyring-password")
        keyring.stdin.close()
        _wait_for_bus_name(env, "org.freedesktop.secrets", keyring)
        yield SecretService(env=env, pids=pids)
    finally:
        for pid in reversed(pids):
            _kill_pid(pid)
        if keyring is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                keyring.wait(5)


def _wait_for_bus_name(env: Mapping[str, str], name: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{name}",
            ],
            env=dict(env),
            capture_output=True,
            timeout=5,
        )
        if b"boolean true" in r.stdout:
            return
        if proc.poll() is not None:
            raise AssertionError(f"gnome-keyring-daemon exited {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"{name} never appeared on the private session bus")


def mode_of(path: str | os.PathLike[str]) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)
