"""Seeing config edits without ``tokend reload``: a ``stat`` of the config file before a request.

At most one ``stat`` per ``INTERVAL``, so a daemon answering thousands of
requests a second does not spend half its time on it. A changed file
(another inode, size or modification time, or a file created where the
daemon runs on the built-in default) is loaded again; a broken one leaves
the previous configuration in place and the reason in ``tokend status`` and
in the unknown-profile error, until the file is fixed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from tokend.core.config import Config
from tokend.core.errors import TokendError

log = logging.getLogger(__name__)

#: What identifies one version of the file: (device, inode, size, mtime in ns); None when absent.
Stamp = tuple[int, int, int, int] | None


#: A request sees an edit made longer ago than this (seconds).
INTERVAL = 0.001


def stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigWatch:
    """Tells the daemon when its config file changed, loading the new one."""

    def __init__(
        self, path: Path, load: Callable[[], Config], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = str(path)
        self._load = load
        self._clock = clock
        self._stamp = stamp(self._path)
        self._checked = clock()
        #: Why the current file is not in use (None: it is, or there is none).
        self.error: str | None = None

    def mark_loaded(self) -> None:
        """The file as it is now was just loaded (``tokend reload``, SIGHUP)."""
        self._stamp = stamp(self._path)
        self.error = None

    def poll(self) -> Config | None:
        """The new configuration when the file changed and loads; else None."""
        checked = self._clock()
        if checked - self._checked < INTERVAL:
            return None
        self._checked = checked
        now = stamp(self._path)
        if now == self._stamp:
            return None
        self._stamp = now
        try:
            config = self._load()
        except TokendError as e:
            self.error = e.message
            log.error("the config changed but is invalid, keeping the previous one: %s", e.message)
            return None
        self.error = None
        return config
