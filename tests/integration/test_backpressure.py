"""Bounded daemon resources: no request holds a connection slot, no client fills its memory."""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration.conftest import Sandbox

DEMO = '[profiles.demo]\nsource = "demo"\n'

#: A --min-ttl of 400 nines: infinite once parsed; formatting it raised OverflowError
#: after the fetch, inside the coroutine the connection awaited.
POISON = b"get\tprofile=demo\tmin_ttl=" + b"9" * 400 + b"\n"
INTERNAL = b"1 50\ntokend: internal error in the daemon; see its log\n"


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
        assert _ask(daemon.socket_path, POISON) == INTERNAL
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
    log = daemon.log_text()
    assert "internal error serving a request" in log and "Traceback" in log
    assert r.out.strip() not in log
