"""Another local user (``nobody``, through ``setpriv``) knocking on the daemon's socket.

``knock(socket_path, request)`` connects as that user, sends ``request`` and
reads until the daemon closes: ``("connect-failed", "13")`` when the 0700
runtime dir keeps it out, else ``("closed" | "reset" | "timeout", bytes the
daemon sent)``. ``knock_past_the_directory`` first hard-links the socket into a
world-traversable directory with the inode opened to everyone, so only the
daemon's own peer check stands in the way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"

_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect-failed", e.errno)
    sys.exit(0)
data = b""
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print("closed", data.hex())
except (ConnectionResetError, BrokenPipeError):
    print("reset", data.hex())
except socket.timeout:
    print("timeout", data.hex())
"""


def require_setpriv() -> None:
    if shutil.which("setpriv") is None or os.getuid() != 0:
        pytest.skip("needs root and setpriv to act as another user")


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        cwd="/",
    )


def knock(socket_path: str, request: bytes) -> tuple[str, bytes | str]:
    r = as_nobody(SYSTEM_PYTHON, "-I", "-c", _CLIENT, socket_path, request.hex())
    kind, _, payload = r.stdout.strip().partition(" ")
    assert kind in ("connect-failed", "closed", "reset", "timeout"), r
    return (kind, payload) if kind == "connect-failed" else (kind, bytes.fromhex(payload))


def knock_past_the_directory(socket_path: str, request: bytes) -> tuple[str, bytes | str]:
    public = Path(tempfile.mkdtemp(prefix="tdpub", dir="/tmp"))
    try:
        os.chmod(public, 0o755)
        link = public / "s"
        os.link(socket_path, link)
        os.chmod(link, 0o666)
        try:
            return knock(str(link), request)
        finally:
            os.chmod(link, 0o600)
    finally:
        shutil.rmtree(public)
