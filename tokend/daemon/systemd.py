"""systemd integration without libsystemd: socket activation, sd_notify, the watchdog."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

from tokend.core.errors import TokendError

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
#: A notification must never wedge the event loop (a full receive queue blocks send).
NOTIFY_TIMEOUT = 1.0


def listen_fds() -> list[socket.socket]:
    """Sockets passed by systemd (``sd_listen_fds`` semantics); empty when none were.

    As ``sd_listen_fds(1)``: the variables are removed whether or not they were
    meant for this process (so children never take them as theirs), and the
    descriptors are made close-on-exec.
    """
    pid = os.environ.pop("LISTEN_PID", None)
    count = os.environ.pop("LISTEN_FDS", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if not pid or not count or not pid.isdigit() or int(pid) != os.getpid():
        return []
    if not count.isdigit() or int(count) == 0:
        return []
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            os.set_inheritable(fd, False)
            mode = os.fstat(fd).st_mode
        except OSError as e:
            raise TokendError(f"LISTEN_FDS={count} but file descriptor {fd} is unusable: {e}") from None
        if not stat.S_ISSOCK(mode):
            raise TokendError(f"file descriptor {fd} passed by the service manager is not a socket")
        socks.append(socket.socket(fileno=fd))
    return socks


def check_listener(sock: socket.socket) -> None:
    """Refuse an inherited socket we cannot serve on (a unit file mistake, not a runtime error)."""
    kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    acceptconn = getattr(socket, "SO_ACCEPTCONN", None)
    listening = acceptconn is None or sock.getsockopt(socket.SOL_SOCKET, acceptconn)
    if sock.family != socket.AF_UNIX or kind != socket.SOCK_STREAM or not listening:
        raise TokendError(
            "the socket passed by the service manager is not a listening unix stream socket "
            "(tokend.socket needs ListenStream=%t/tokend/tokend.sock and Accept=no)"
        )


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``READY=1``) to the service manager, if there is one."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(NOTIFY_TIMEOUT)
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", addr.lstrip("\0"), e)
        return False


def reloading() -> bool:
    """``RELOADING=1`` with the timestamp newer managers (``Type=notify-reload``) require."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds when systemd watches this process.

    The variables are removed (``sd_watchdog_enabled(1)``) so that processes
    the daemon runs (command sources) do not think they are watched.
    """
    usec = os.environ.pop("WATCHDOG_USEC", None)
    pid = os.environ.pop("WATCHDOG_PID", None)
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def start_watchdog(loop: asyncio.AbstractEventLoop, on_ping: Callable[[], Any] | None = None) -> None:
    """Ping the watchdog from the event loop itself, so a wedged loop gets restarted.

    ``on_ping`` runs at each ping: a free, regular moment for cheap checks
    (the clock watcher compares its clocks) without a timer of its own.
    """
    interval = watchdog_interval()
    if interval is None:
        return

    def ping() -> None:
        loop.call_later(interval, ping)  # first: a failing on_ping must not end the pings
        notify("WATCHDOG=1")
        if on_ping is not None:
            on_ping()

    ping()
