"""Subprocesses of a source: own process group, killed whole on timeout or shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Any


class Children:
    """The running children of one source, so ``close`` can kill them (daemon shutdown)."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # Own session: the whole group goes on timeout; stdin is never the daemon's.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
        with self._lock:
            self._running.add(proc)
            if self._closed:
                kill_group(proc)
        return proc

    def done(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(proc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for proc in self._running:
                kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole group (it leads its own session)."""
    if proc.returncode is None:  # not reaped yet: the group id is still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
