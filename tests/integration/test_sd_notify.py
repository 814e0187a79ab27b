"""``sd_notify`` as the user manager sees it: READY=1, watchdog pings, RELOADING=1, STOPPING=1.

The test plays systemd: it binds the ``NOTIFY_SOCKET`` datagram socket, gives
the daemon a small ``WATCHDOG_USEC`` and reads what arrives. It also checks
the journald side: with ``JOURNAL_STREAM`` naming its stderr the daemon writes
priority-prefixed lines without timestamps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEND, Sandbox, ping

WATCHDOG_USEC = 200_000  # a ping every 0.1 s

# A command source that reports what it inherited: the watchdog variables must
# not reach it (sd_watchdog_enabled(1) semantics), nor the listening socket.
ENV_PROBE = [
    "/bin/sh",
    "-c",
    'printf \'{"token": "probe-%s-%s", "expires_in": 3600}\\n\' '
    '"${WATCHDOG_USEC:-none}" "${LISTEN_FDS:-none}"',
]


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def next(self, timeout: float = 5.0) -> str:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            seen = self.messages
            raise AssertionError(f"no sd_notify message within {timeout}s; got so far: {seen}") from None
        msg = data.decode()
        self.messages.append(msg)
        return msg

    def wait_for(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(max(deadline - time.monotonic(), 0.01))
            if needle in msg.split("\n"):
                return msg

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(sandbox: Sandbox) -> Iterator[NotifySocket]:
    ns = NotifySocket(sandbox.root / "notify")
    try:
        yield ns
    finally:
        ns.close()


def _start(sandbox: Sandbox, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = sandbox.root / "serve.log"
    with open(log, "wb") as f:
        # JOURNAL_STREAM names the daemon's stderr (device:inode), as systemd sets it.
        st = os.fstat(f.fileno())
        env = dict(env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        proc = subprocess.Popen(
            [TOKEND, "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sandbox.extra_pids.append(proc.pid)
    return proc, log


@pytest.mark.timeout(60)
def test_ready_watchdog_reload_stopping(sandbox: Sandbox, notify: NotifySocket) -> None:
    sandbox.write_config(f'[profiles.probe]\nsource = "command"\ncommand = {json.dumps(ENV_PROBE)}\n')
    env = sandbox.env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    proc, log = _start(sandbox, env)
    try:
        ready = notify.wait_for("READY=1")
        assert f"STATUS=serving on {sandbox.socket_path}" in ready.split("\n")
        assert ping(sandbox.socket_path), "READY=1 is sent only once the socket accepts"

        # Watchdog pings keep coming from the event loop, about every WATCHDOG_USEC/2.
        start = time.monotonic()
        for _ in range(4):
            notify.wait_for("WATCHDOG=1", timeout=2)
        assert time.monotonic() - start < 3.0  # 0.4 s expected; margin for load

        # The daemon's children see neither the watchdog nor the listener.
        r = sandbox.print_("probe")
        assert r.status == 0, r
        assert r.out == "probe-none-none\n"

        # SIGHUP (ExecReload=kill -HUP): RELOADING=1 with a timestamp, then READY=1 again.
        os.kill(proc.pid, signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1")
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.split("\n"))
        again = notify.wait_for("READY=1")
        assert "STATUS=serving on" in again and "reloaded" in again

        os.kill(proc.pid, signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert proc.wait(10) == 0

        text = log.read_text()
        lines = [line for line in text.splitlines() if line]
        # journald: a priority prefix per line, no timestamp of our own.
        assert lines and all(line.startswith("<") for line in lines), text
        assert any(line.startswith("<6>INFO tokend.daemon: tokend ") for line in lines), text
        assert not any(line[3:7].isdigit() for line in lines), "no timestamps under journald"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.mark.timeout(30)
def test_watchdog_for_another_pid_is_ignored(sandbox: Sandbox, notify: NotifySocket) -> None:
    sandbox.write_config('[profiles.demo]\nsource = "demo"\n')
    env = sandbox.env(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID="1")
    proc, _log = _start(sandbox, env)
    try:
        notify.wait_for("READY=1")
        with pytest.raises(AssertionError, match="no sd_notify message"):
            notify.next(timeout=0.5)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
    assert "STOPPING=1" in notify.next()


@pytest.mark.timeout(30)
def test_without_journal_stream_logs_carry_timestamps(sandbox: Sandbox) -> None:
    """A JOURNAL_STREAM inherited from elsewhere (not our stderr) is not believed."""
    sandbox.write_config('[profiles.demo]\nsource = "demo"\n')
    daemon = sandbox.start_daemon(env=sandbox.env(JOURNAL_STREAM="1:1"))
    daemon.stop()
    first = daemon.log_text().splitlines()[0]
    assert first[:4].isdigit() and not first.startswith("<"), first
