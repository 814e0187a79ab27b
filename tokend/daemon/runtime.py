"""The runtime directory, the single-instance lock and the listening socket."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket

from tokend.client import paths
from tokend.core.errors import TokendError


def take_instance_lock(rundir: str) -> int:
    """Hold ``daemon.lock`` for the daemon's life; a second ``tokend serve`` fails here."""
    path = os.path.join(rundir, "daemon.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise TokendError(
            f"another tokend daemon is already running (pid {pid}) "
            f"on {os.path.join(rundir, paths.SOCKET_NAME)}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def bind_socket(path: str, backlog: int) -> socket.socket:
    """Listen on ``path`` with mode 0600, replacing a stale socket a crashed daemon left."""
    if len(os.fsencode(path)) > paths.MAX_SOCKET_PATH:
        raise TokendError(
            f"socket path {path} is {len(os.fsencode(path))} bytes, over the "
            f"{paths.MAX_SOCKET_PATH}-byte limit of unix sockets; use a shorter XDG_RUNTIME_DIR"
        )
    with contextlib.suppress(FileNotFoundError):
        # Safe: we hold the instance lock, so whatever is here is stale.
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise TokendError(f"cannot listen on {path}: {e.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def peer_cred(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end (SO_PEERCRED: pid, uid, gid).

    The pid is 0 when the peer is in another pid namespace.
    """
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end."""
    return peer_cred(sock)[1]
