"""Subprocesses of a source: own process group, killed whole on timeout or shutdown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from tokend.core import linux
from tokend.core.errors import SourceTimeout


class Children:
    """The running children of one source, so ``close`` can kill them (daemon shutdown)."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # Own session: the whole group goes on timeout; stdin is never the daemon's.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
            **kwargs,
        )
        with self._lock:
            self._running.add(proc)
            if self._closed:
                kill_group(proc)
        return proc

    def run(
        self, argv: list[str], *, timeout: float, what: str, profile: str, **kwargs: Any
    ) -> tuple[int, bytes, bytes]:
        """``argv`` run to its end within ``timeout``: (exit status, stdout, stderr).

        On timeout the whole group is killed and ``SourceTimeout`` names ``what``;
        an ``OSError`` from starting it is the caller's to word.
        """
        proc = self.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
            raise SourceTimeout(
                f"{what} did not finish within {timeout:g}s; killed", profile=profile
            ) from None
        finally:
            self.done(proc)
        return proc.returncode, out, err

    def done(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.discard(proc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for proc in self._running:
                kill_group(proc)


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the daemon dies, even by ``kill -9``.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not
    the process. Sources start children from the broker's fetch threads
    (ThreadPoolExecutor workers), which in Python 3.11 never exit before the
    executor shuts down at daemon shutdown, when Children.close kills every
    child anyway. A child started from a short-lived thread would die with it.
    """

    def preexec() -> None:
        # Between fork and exec: only a prepared libc call and two syscalls.
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the daemon died before the line above
            os._exit(1)

    return preexec


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole group (it leads its own session)."""
    if proc.returncode is None:  # not reaped yet: the group id is still ours
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
