"""The ``Source`` protocol every provider implements, and its option schema."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from tokend.core.credential import Credential


@dataclass(frozen=True)
class Option:
    """One profile key a source accepts.

    ``type`` is one of: str, duration, strlist, bool, int, table.

    ``profile_of`` makes a str option name another profile of the same config
    whose source is one of those listed (``via = "PROFILE"``): the loader checks
    it and the source receives that profile's ``Profile`` instead of its name.
    """

    type: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""
    profile_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoginContext:
    """What ``tokend login`` hands a source: the one place a person is involved."""

    profile: str
    echo: Callable[[str], None]  # instructions for the person (stderr)
    open_browser: bool = True
    timeout: float = 600.0
    # A short answer from the person (an MFA code); None when there is no terminal.
    prompt: Callable[[str], str] | None = None


@dataclass(frozen=True)
class FetchRequest:
    """What the broker asks of a source: one fresh credential within ``timeout`` seconds."""

    profile: str
    timeout: float
    forced: bool = False


class Source(Protocol):
    """A provider of credentials for one profile.

    ``fetch`` returns a new, unexpired credential or raises ``SourceUnavailable``
    (nothing configured to try), ``SourceError`` (configured but failed) or
    ``LoginRequired`` (a person must run ``tokend login``). It never prompts and
    bounds every network call and subprocess by ``request.timeout``.
    """

    name: str

    def fetch(self, request: FetchRequest) -> Credential: ...


class BaseSource:
    """Convenience base for sources: declares ``options`` and keeps the constructor uniform.

    The registry builds every source as ``cls(profile, options, clock=clock)``
    with options already validated against ``cls.options``.
    """

    name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        self.profile = profile
        self.settings = options
        self.clock = clock

    def fetch(self, request: FetchRequest) -> Credential:
        raise NotImplementedError

    def close(self) -> None:
        """Abandon fetches in progress (shutdown): sources with subprocesses kill them."""

    def fingerprint(self) -> str | None:
        """Whose credential ``fetch`` would return now (None: always the same identity).

        The broker calls this on every request and drops a cached credential
        fetched under another fingerprint (a new credentials file, another
        signed-in account). It must be cheap: ``os.stat`` calls, no network.
        """
        return None

    # Laptop SSO. Sources that need a person override these three.

    supports_login: ClassVar[bool] = False

    def identity(self) -> str:
        """Who a login is for: profiles sharing an identity share one login flow."""
        return f"{self.name}:{self.profile}"

    def login(self, ctx: LoginContext) -> None:
        """Run the interactive sign-in (browser, device code, MFA prompt)."""
        raise NotImplementedError

    def logout(self) -> None:
        """Forget what ``login`` stored."""
        raise NotImplementedError
