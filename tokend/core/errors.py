"""One error type for the project: a code, an exit status and a scrubbed message."""

from __future__ import annotations

import threading
from collections.abc import Iterable

# Exit statuses (DESIGN §4).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3
EXIT_LOGIN = 4


class TokendError(Exception):
    """Base error: ``str(err)`` is one line fit for stderr; never holds a secret."""

    code = "failed"
    exit_status = EXIT_FAILED

    def __init__(self, message: str, *, profile: str | None = None) -> None:
        self.profile = profile
        self.message = scrub(" ".join(message.split()))
        super().__init__(self.message)

    def line(self) -> str:
        prefix = f"tokend: {self.profile}: " if self.profile else "tokend: "
        return prefix + self.message


class UsageError(TokendError):
    code = "usage"
    exit_status = EXIT_USAGE


class ConfigError(UsageError):
    code = "config"


class UnknownProfile(UsageError):
    code = "unknown-profile"


class SourceUnavailable(TokendError):
    """Nothing to try: the source is not configured on this machine (a chain moves on)."""

    code = "unavailable"


class SourceError(TokendError):
    """The source is configured but failed; ``retryable`` tells the broker to back off."""

    code = "source"

    def __init__(self, message: str, *, profile: str | None = None, retryable: bool = True):
        super().__init__(message, profile=profile)
        self.retryable = retryable


class SourceTimeout(SourceError):
    code = "timeout"


class LoginRequired(TokendError):
    """A person must run ``tokend login PROFILE``; never prompt from a fetch."""

    code = "login-required"
    exit_status = EXIT_LOGIN


class DaemonUnreachable(TokendError):
    code = "no-daemon"
    exit_status = EXIT_NO_DAEMON


class Relayed(TokendError):
    """An error line the daemon already rendered, passed on unchanged."""

    def __init__(self, line: str, exit_status: int) -> None:
        super().__init__(line.removeprefix("tokend: "))
        self.exit_status = exit_status

    def line(self) -> str:
        return "tokend: " + self.message


class Redactor:
    """Remembers every value still served so no log line or error can carry one.

    Values are counted: two profiles (or two cached credentials) serving the same
    value each hold a reference, and the value stays redacted until the last
    one lets go. Values shorter than ``MIN_LEN`` are not redacted: an ``env``
    profile serving ``/usr`` or ``prod`` must not garble every line that
    happens to contain it, and such short values are not secrets worth the name.
    """

    MIN_LEN = 8

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for v in values:
                if len(v) >= self.MIN_LEN:
                    self._counts[v] = self._counts.get(v, 0) + 1

    def discard(self, values: Iterable[str]) -> None:
        with self._lock:
            for v in values:
                n = self._counts.get(v, 0) - 1
                if n > 0:
                    self._counts[v] = n
                else:
                    self._counts.pop(v, None)

    def __contains__(self, value: str) -> bool:
        with self._lock:
            return value in self._counts

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._counts, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        return text


#: Process-wide redactor: the broker registers every credential it hands out.
REDACTOR = Redactor()


def scrub(text: str) -> str:
    return REDACTOR(text)
