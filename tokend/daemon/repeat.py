"""``tokend-print --refresh-on-repeat``: the same process asking again means its token was refused.

The Codex CLI runs its ``auth.command`` once per process and keeps the token
for ``refresh_interval_ms`` (default 300 s); before that it runs the command
again only after a 401, and it cannot pass ``--refresh`` then. Claude Code's
``apiKeyHelper`` behaves the same, but runs through ``/bin/sh -c``. So a
second request for the same profile from the same caller within
``REPEAT_WINDOW`` (just under Codex's 300 s, so its scheduled re-run is not
mistaken for one) is served as ``--refresh`` — which the broker rate-limits
per profile (``refresh_limit``).

The caller is found by the daemon, not taken from the request: from the
peer's pid (SO_PEERCRED) it follows the parent links in /proc past shells
(dash runs ``sh -c CMD``'s last command as a child, so every run has a new
``sh`` parent) to the nearest ancestor that is not a shell, and keys on that
process's pid and start time, so a reused pid is a new caller.

Known limits: a parent that asks twice for another reason inside the window
(Codex re-runs the command on some conversation switches) costs one
rate-limited upstream refresh. A consumer that runs the helper through a
long-lived shell of its own is one caller for all its users.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

REPEAT_WINDOW = 290.0
#: Callers remembered at most (one entry per profile and parent pid).
MAX_CALLERS = 4096
#: A pid has at most this many digits (Linux caps pid_max at 2**22).
MAX_PID_DIGITS = 10
#: ``comm`` names of shells, which wrap the helper and are not the caller.
SHELLS = frozenset(
    {"sh", "dash", "bash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "ash", "busybox", "fish",
     "tcsh", "csh", "yash", "posh", "nu", "elvish"}
)
#: Ancestors walked at most (a chain of nested shells longer than this is odd).
MAX_DEPTH = 16
_CALLER = re.compile(rf"[0-9]{{1,{MAX_PID_DIGITS}}}(:[0-9]{{1,20}})?")


def _stat(pid: int, proc: str) -> tuple[str, int, str] | None:
    """(comm, ppid, start time) of ``pid`` from /proc/PID/stat, or None when it is gone."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm is in parentheses and may itself contain ") ": split at the last one.
    head, sep, tail = raw.rpartition(b") ")
    if not sep:
        return None
    comm = head.partition(b" (")[2].decode("utf-8", "replace")
    rest = tail.split()  # fields 3 (state) onwards: ppid is field 4, starttime field 22
    if len(rest) < 20:
        return None
    return comm, int(rest[1]), rest[19].decode("ascii", "replace")


def caller_of(peer_pid: int, *, proc: str = "/proc") -> str | None:
    """``"PID:STARTTIME"`` of the nearest ancestor of ``peer_pid`` that is not a shell.

    None when /proc does not tell (the peer is gone, or lives in another pid
    namespace and SO_PEERCRED gave 0): then nothing counts as a repeat.
    """
    if peer_pid <= 0:
        return None
    me = _stat(peer_pid, proc)
    if me is None:
        return None
    pid = me[1]
    for _ in range(MAX_DEPTH):
        if pid <= 1:
            return None  # orphaned to init: no caller to tell apart
        st = _stat(pid, proc)
        if st is None:
            return None
        comm, ppid, start = st
        if comm not in SHELLS:
            return f"{pid}:{start}"
        pid = ppid
    return None


class RepeatTracker:
    """Remembers when each (profile, caller) last asked."""

    def __init__(
        self,
        window: float = REPEAT_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        self.window = window
        self._clock = clock
        self._max = max_callers
        self._seen: dict[tuple[str, str], float] = {}

    def repeated(self, profile: str, caller: str) -> bool:
        """Record this request; True when the same caller asked for ``profile`` within the window.

        ``caller`` is a pid or ``PID:STARTTIME`` (:func:`caller_of`); anything else
        is ignored (never a repeat, never remembered), so it cannot reach a log line.
        """
        if not (caller.isascii() and _CALLER.fullmatch(caller)):
            return False
        now = self._clock()
        key = (profile, caller)
        last = self._seen.pop(key, None)
        self._seen[key] = now  # re-inserted: the dict stays ordered oldest first
        if len(self._seen) > self._max:
            self._prune(now)
        return last is not None and now - last < self.window

    def _prune(self, now: float) -> None:
        for key, seen in list(self._seen.items()):
            if now - seen < self.window and len(self._seen) <= self._max:
                break
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)
