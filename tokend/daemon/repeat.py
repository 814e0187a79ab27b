"""``tokend-print --refresh-on-repeat``: the same process asking again means its token was refused.

The Codex CLI runs its ``auth.command`` once per process and keeps the token
for ``refresh_interval_ms`` (default 300 s); before that it runs the command
again only after a 401, and it cannot pass ``--refresh`` then. So the helper
sends its parent's pid, and a second request for the same profile from the
same parent within ``REPEAT_WINDOW`` (just under Codex's 300 s, so its
scheduled re-run is not mistaken for one) is served as ``--refresh`` — which
the broker rate-limits per profile (``refresh_limit``).

Known limits: a parent that asks twice for another reason inside the window
(Codex re-runs the command on some conversation switches) costs one
rate-limited upstream refresh; a pid reused within the window likewise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

REPEAT_WINDOW = 290.0
#: Callers remembered at most (one entry per profile and parent pid).
MAX_CALLERS = 4096
#: A pid has at most this many digits (Linux caps pid_max at 2**22).
MAX_PID_DIGITS = 10


class RepeatTracker:
    """Remembers when each (profile, parent pid) last asked."""

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

        ``caller`` comes from the client unchecked: anything but a pid is ignored
        (never a repeat, never remembered), so it cannot reach a log line either.
        """
        if not (caller.isascii() and caller.isdigit() and len(caller) <= MAX_PID_DIGITS):
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
