"""Desktop notification when the daemon needs a person: "run: tokend login PROFILE".

Best effort: ``notify-send`` when it is installed (nothing otherwise), at most
once per identity (profiles sharing an SSO session or account share one) per
``interval``, from a thread of its own so no caller waits on it. Profiles
opt out with ``notify = false`` (or ``[defaults] notify = false``); under
``CI=true`` nothing is sent. The daemon never opens a browser itself: only
``tokend login`` may.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

from tokend import ci
from tokend.core.config import Profile
from tokend.core.errors import LoginRequired, TokendError
from tokend.sources.base import BaseSource

log = logging.getLogger(__name__)

INTERVAL = 15 * 60.0
SEND_TIMEOUT = 5.0
TITLE = "tokend: sign-in needed"


class LoginNotifier:
    """``Broker(on_failure=LoginNotifier())``: tells the person when a login is required."""

    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        which: Callable[[str], str | None] = shutil.which,
        run: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._which = which
        self._run = run or _send
        self._sent: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, profile: Profile, source: BaseSource, err: TokendError) -> None:
        if not isinstance(err, LoginRequired) or not profile.notify or ci.active():
            return
        threading.Thread(
            target=self.notify, args=(profile, source, err), name="tokend-notify", daemon=True
        ).start()

    def notify(self, profile: Profile, source: BaseSource, err: TokendError) -> bool:
        """Send now unless this identity was told within ``interval``; True when sent."""
        try:
            identity = source.identity()
        except Exception:  # a broken profile still deserves its notification
            identity = f"{profile.source}:{profile.name}"
        now = self._clock()
        with self._lock:
            last = self._sent.get(identity)
            if last is not None and now - last < self.interval:
                return False
            self._sent[identity] = now
        exe = self._which("notify-send")
        if exe is None:
            return False
        body = f"{profile.name}: {err.message}"
        try:
            self._run([exe, "--app-name=tokend", "--icon=dialog-password", TITLE, body])
        except (OSError, subprocess.SubprocessError) as e:
            log.info("%s: no desktop notification (%s)", profile.name, e)
            return False
        log.info("%s: desktop notification sent: a tokend login is needed", profile.name)
        return True


def _send(argv: list[str]) -> None:
    subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=SEND_TIMEOUT,
        check=True,
    )
