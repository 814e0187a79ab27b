"""Socket activation without a running systemd: ``systemd-socket-activate -l PATH tokend serve``.

``systemd-socket-activate`` (Debian's systemd package) binds the socket, waits
for the first connection, then execs the daemon in place (same pid) with
``LISTEN_FDS``/``LISTEN_PID``, as the user manager does with tokend.socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEND, Sandbox, _proc_cmdline, _proc_environ

ACTIVATE = shutil.which("systemd-socket-activate")

pytestmark = pytest.mark.skipif(
    ACTIVATE is None, reason="systemd-socket-activate is not installed (apt-get install systemd)"
)

#: What systemd-socket-activate passes on (it clears the rest of the environment).
PASS_ENV = ("HOME", "PATH", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "TOKEND_CONFIG", "LC_ALL")


DEMO = """\
[profiles.demo]
source = "demo"
latency = "50ms"
"""


class Activator:
    def __init__(self, sandbox: Sandbox, *extra: str) -> None:
        assert ACTIVATE is not None
        sandbox.write_config(DEMO)
        # The user manager creates the directory (DirectoryMode=0700); here we do.
        sandbox.rundir.mkdir(mode=0o700, exist_ok=True)
        self.path = sandbox.socket_path
        assert len(os.fsencode(self.path)) <= 107
        self.log = sandbox.root / "activate.log"
        argv = [ACTIVATE, "-l", self.path, *extra]
        for name in PASS_ENV:
            argv += ["-E", name]
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                [*argv, TOKEND, "serve"],
                env=sandbox.env(),
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        sandbox.extra_pids.append(self.proc.pid)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path):
            assert self.proc.poll() is None, self.log_text()
            assert time.monotonic() < deadline, "systemd-socket-activate never bound " + self.path
            time.sleep(0.02)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)


def _fd_flags(pid: int, fd: int) -> int:
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


@pytest.mark.timeout(60)
def test_daemon_serves_on_the_inherited_socket(sandbox: Sandbox) -> None:
    act = Activator(sandbox)
    try:
        # Nothing runs until the first connection.
        assert "serve" in _proc_cmdline(act.proc.pid) and "Execing" not in act.log_text()

        env = sandbox.env(TOKEND_NO_AUTOSTART="1", TOKEND_NO_FALLBACK="1")
        first = sandbox.print_("demo", env=env)
        assert first.status == 0, first
        assert first.out.startswith("demo-")
        again = sandbox.print_("demo", env=env)
        assert again.out == first.out, "the second call is served from the same daemon's cache"

        # The activator exec'd the daemon in place: same pid, serving our socket.
        doc = sandbox.status()
        assert doc["pid"] == act.proc.pid
        assert doc["socket"] == act.path
        assert _proc_cmdline(act.proc.pid)[-1] == "serve"
        log = act.log_text()
        assert f"serving on {act.path}" in log
        # sd_listen_fds semantics: the inherited descriptor is close-on-exec
        # (command sources must not inherit the listener).
        assert Path(f"/proc/{act.proc.pid}/fd/3").exists()
        assert _fd_flags(act.proc.pid, 3) & os.O_CLOEXEC
        assert "LISTEN_FDS" in _proc_environ(act.proc.pid)  # given at exec ...

        assert act.stop() == 0
        # The socket belongs to the service manager: the daemon leaves it in place.
        assert os.path.exists(act.path)
        assert "stopping" in act.log_text()
    finally:
        act.stop()


@pytest.mark.timeout(60)
def test_many_first_callers_all_served_by_one_activation(sandbox: Sandbox) -> None:
    """The herd after login: every caller queued on the socket before the daemon ran is answered."""
    act = Activator(sandbox)
    try:
        env = sandbox.env(TOKEND_NO_AUTOSTART="1", TOKEND_NO_FALLBACK="1")
        results = sandbox.run_many([[str(Path(TOKEND).parent / "tokend-print"), "demo"]] * 12, env=env)
        assert all(r.status == 0 for r in results), [r.err for r in results if r.status]
        assert len({r.out for r in results}) == 1, "one daemon, one upstream fetch"
        assert sandbox.daemon_pids() == [act.proc.pid]
    finally:
        act.stop()


@pytest.mark.timeout(30)
def test_a_datagram_socket_is_refused_with_a_clear_error(sandbox: Sandbox) -> None:
    act = Activator(sandbox, "--datagram")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"ping\n", act.path)
        status = act.proc.wait(15)
        assert status != 0
        assert "not a listening unix stream socket" in act.log_text()
    finally:
        act.stop()


@pytest.mark.timeout(30)
def test_listen_fds_for_another_process_are_ignored(sandbox: Sandbox) -> None:
    """LISTEN_PID names someone else (inherited by accident): bind our own socket."""
    sandbox.write_config(DEMO)
    daemon = sandbox.start_daemon(env=sandbox.env(LISTEN_PID="1", LISTEN_FDS="1"))
    assert sandbox.print_("demo").status == 0
    assert daemon.stop() == 0
    assert not os.path.exists(sandbox.socket_path), "a socket we bound ourselves is removed on exit"
