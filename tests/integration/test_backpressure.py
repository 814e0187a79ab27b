"""Bounded daemon resources: no request holds a connection slot, no client fills its memory."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Sandbox

DEMO = '[profiles.demo]\nsource = "demo"\n'

#: A --min-ttl of 400 nines: once an OverflowError inside the coroutine the
#: connection awaited (a slot held for good), now a usage error answered at once.
#: Any exception that does escape answers "internal error" and frees the slot
#: (tests/daemon/test_connection.py).
POISON = b"get\tprofile=demo\tmin_ttl=" + b"9" * 400 + b"\n"
REFUSED = b"tokend: demo: --min-ttl: "


def _ask(path: str, request: bytes, timeout: float = 10.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def _send_and_leave(path: str, request: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        for _ in range(1000):
            try:
                s.connect(path)
                break
            except BlockingIOError:  # the listen backlog is full: the daemon is catching up
                time.sleep(0.01)
        s.sendall(request)


@pytest.mark.timeout(120)
def test_requests_that_raise_do_not_use_up_connection_slots(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO)
    daemon = sandbox.start_daemon()
    # A few answered: the caller learns what happened.
    for _ in range(3):
        reply = _ask(daemon.socket_path, POISON)
        assert reply.startswith(b"2 ") and REFUSED in reply and b"maximum" in reply, reply
    # More than the 2,048 slots, each from a client that gives up without reading
    # (as tokend-print does at its deadline): every one must be freed.
    for _ in range(2100):
        _send_and_leave(daemon.socket_path, POISON)
    deadline = time.monotonic() + 60
    while True:
        r = sandbox.print_("demo")
        if r.status == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the daemon may still be working through the backlog
    assert r.status == 0, r
    assert r.out.startswith("demo-")
    assert daemon.alive()
    assert r.out.strip() not in daemon.log_text()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Flooder(threading.Thread):
    """Pipelines ``status`` requests as fast as it can and never reads a reply."""

    def __init__(self, path: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = stop
        self.sent = 0
        self.reconnects = 0

    def run(self) -> None:
        chunk = b"status\n" * 512
        while not self.stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(0.2)
                    s.connect(self.path)
                    while not self.stop.is_set():
                        try:
                            self.sent += s.send(chunk)
                        except TimeoutError:
                            continue  # the daemon stopped reading us: keep pushing
            except OSError:
                self.reconnects += 1  # dropped for not reading: come back for more
                time.sleep(0.01)


@pytest.mark.timeout(120)
def test_clients_that_never_read_neither_stall_the_daemon_nor_fill_its_memory(sandbox: Sandbox) -> None:
    sandbox.write_config(DEMO)
    daemon = sandbox.start_daemon()
    env = sandbox.env(TOKEND_NO_FALLBACK="1")  # an answer must come from the daemon
    assert sandbox.print_("demo", env=env).status == 0
    rss_before = _rss_kib(daemon.pid)
    stop = threading.Event()
    flooders = [Flooder(daemon.socket_path, stop) for _ in range(20)]
    for f in flooders:
        f.start()
    latencies: list[float] = []
    failures = []
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            r = sandbox.print_("demo", env=env, timeout=30)
            latencies.append(r.elapsed)
            if r.status != 0:
                failures.append(r)
        rss_during = _rss_kib(daemon.pid)
    finally:
        stop.set()
        for f in flooders:
            f.join(10)
    after = sandbox.print_("demo", env=env, timeout=30)  # at once responsive, no backlog to work off
    rss_after = _rss_kib(daemon.pid)
    sent = sum(f.sent for f in flooders)
    print(
        f"\nbackpressure: {len(latencies)} calls, worst {max(latencies):.2f}s; "
        f"RSS {rss_before} KiB before, {rss_during} during, {rss_after} after; "
        f"{sent // 7} status requests sent, {sum(f.reconnects for f in flooders)} reconnects"
    )
    assert not failures, failures[:3]
    assert after.status == 0 and after.elapsed < 4.0, after
    assert max(latencies) < 4.0, latencies
    # Generous: the point is tens of kilobytes per connection, not hundreds of megabytes.
    assert max(rss_during, rss_after) - rss_before < 20 * 1024
    assert daemon.alive()
