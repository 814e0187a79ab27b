"""The ``Source`` protocol every provider implements, its optional capabilities and option schema.

A source class is registered under ``source = "…"`` (tokend/sources/registry.py)
and honours this contract (docs/sources.md):

- class attributes ``name`` and ``options`` (the profile keys it accepts);
- ``validate(profile, options)``, a classmethod the config loader calls with the
  converted options, raising ``ConfigError("profiles.NAME.KEY: …")``;
- optionally ``dependencies(profile, options)``: other profiles whose credential
  its fetches ask the broker for (``FetchRequest.credential_of``);
- a constructor ``cls(profile, options, *, clock)``;
- instances with ``fetch(request)`` (the ``Source`` protocol) and whatever
  optional capability they have (``Login``, ``Fingerprinted``, ``Closable``,
  ``Revocable``).

``BaseSource`` is a convenience base that provides all of that with defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from tokend.core.credential import Credential
from tokend.core.errors import SourceError
from tokend.sources.extras import missing

if TYPE_CHECKING:
    from tokend.core.config import Profile


@dataclass(frozen=True)
class Option:
    """One profile key a source accepts.

    ``type`` is one of: str, duration, strlist, strs (a str, or a strlist as a tuple), bool, int, table.

    ``profile_of`` makes a str option name another profile of the same config
    whose source is one of those listed (``via = "PROFILE"``): the loader checks
    it and the source receives that profile's ``Profile`` instead of its name.

    ``config_relative`` marks a program path (a str, or a strlist's first item):
    a relative path with a slash in it (``./x.sh``, ``bin/x``) is resolved against
    the config file's directory at load; a bare name (``gcloud``) keeps the PATH lookup.

    ``lifetime`` marks a duration that fixes the life of the credentials the
    source issues: the loader refuses one not longer than the profile's
    ``min_ttl`` (such a credential could never be served).
    """

    type: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""
    profile_of: tuple[str, ...] = ()
    config_relative: bool = False
    lifetime: bool = False


@dataclass(frozen=True)
class LoginContext:
    """What ``tokend login`` hands a source: the one place a person is involved."""

    profile: str
    echo: Callable[[str], None]  # instructions for the person (stderr)
    open_browser: bool = True
    timeout: float = 600.0
    # A short answer from the person (an MFA code); None when there is no terminal.
    prompt: Callable[[str], str] | None = None
    # The loaded config's profiles, for a sign-in that serves other profiles too (oauth2's
    # identities); None: the caller has none loaded.
    profiles: Mapping[str, Profile] | None = None


class CredentialOf(Protocol):
    """``credential_of(profile, force=False)``: another profile's credential, served by the broker."""

    def __call__(self, profile: str, *, force: bool = False) -> Credential: ...


def no_broker(profile: str, *, force: bool = False) -> Credential:
    """``credential_of`` of a request made outside the broker: there is nobody to ask."""
    raise SourceError(
        f"this fetch cannot get profile {profile!r}'s credential: it was not asked through the broker",
        retryable=False,
    )


@dataclass(frozen=True)
class FetchRequest:
    """What the broker asks of a source: one fresh credential within ``timeout`` seconds.

    ``credential_of`` asks the broker for another profile's credential (one a
    source declared in ``dependencies``): cached, single-flight, backed off and
    shown in ``tokend status`` like any request, bounded by this fetch's time.
    It raises ``TokendError`` naming that profile.
    """

    profile: str
    timeout: float
    forced: bool = False
    credential_of: CredentialOf = field(default=no_broker, compare=False, repr=False)


@dataclass(frozen=True)
class Dependency:
    """A profile a source's fetches need (an access token for a secrets API).

    ``name`` is either a profile of the config (``via``) or an internal one the
    loader adds (a name with ``:`` in it, which users cannot write) with
    ``source`` and ``options``; ``settings_of`` names the profile whose
    ``min_ttl``/``timeout``/``refresh_limit`` it takes (None: ``[defaults]``).
    """

    name: str
    source: str
    options: Mapping[str, Any]
    settings_of: str | None = None


def owner(profile: str) -> str:
    """The profile an internal one (``corp:vault.azure.net``, see ``Dependency``) derives from.

    Sources keep sign-ins and keychain entries under this name, so the internal
    profile uses the sign-in of the profile it came from.
    """
    return profile.partition(":")[0]


@runtime_checkable
class Source(Protocol):
    """A provider of credentials for one profile.

    ``fetch`` returns a new, unexpired credential or raises ``SourceUnavailable``
    (nothing configured to try), ``SourceError`` (configured but failed) or
    ``LoginRequired`` (a person must run ``tokend login``). It never prompts and
    bounds every network call and subprocess by ``request.timeout``.
    """

    name: str

    def fetch(self, request: FetchRequest) -> Credential: ...


class SourceClass(Protocol):
    """What the registry hands out: a source class (see the module docstring)."""

    name: str
    options: Mapping[str, Option]

    def __call__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> Source: ...

    def validate(self, profile: str, options: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Login(Protocol):
    """Capability: an interactive sign-in (``tokend login`` / ``logout``)."""

    def identity(self) -> str:
        """Who a login is for: profiles sharing an identity share one login flow."""
        ...

    def login(self, ctx: LoginContext) -> None: ...

    def logout(self) -> None: ...


@runtime_checkable
class Fingerprinted(Protocol):
    """Capability: tells whose credential ``fetch`` would return now (cheap, no network)."""

    def fingerprint(self) -> str | None: ...


@runtime_checkable
class Closable(Protocol):
    """Capability: abandons fetches in progress at shutdown (kills subprocesses)."""

    def close(self) -> None: ...


@runtime_checkable
class Revocable(Protocol):
    """Capability: ends on purpose what the source holds upstream (Vault leases, tokens it logged in for).

    ``tokend logout PROFILE`` has the daemon call ``revoke`` on the instance that
    holds them, and so does ``tokend stop`` for instances whose ``revokes_on_stop()``
    is true. ``revoke`` is bounded by ``timeout`` seconds, then forgets what it held
    whether or not upstream answered; it returns what it revoked, for people to read.
    """

    supports_revoke: bool

    def revoke(self, timeout: float) -> list[str]: ...

    def revokes_on_stop(self) -> bool: ...


class BaseSource:
    """Convenience base for sources: declares ``options`` and keeps the constructor uniform.

    The registry builds every source as ``cls(profile, options, clock=clock)``
    with options already checked against ``cls.options`` and by ``cls.validate``.
    """

    name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # SDKs are imported inside fetch/login: a missing one is a line naming the extra
        # to install (exit 2, not retried), not a retryable "No module named 'google'".
        for method in ("fetch", "login"):
            function = getattr(cls, method)
            if not getattr(function, "_names_missing_modules", False):
                setattr(cls, method, _naming_missing_modules(function))

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        self.profile = profile
        self.settings = options
        self.clock = clock

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        """Raise ``ConfigError("profiles.PROFILE.KEY: …")`` unless the options make sense together.

        Called by the config loader with every option converted and defaults
        filled in (``via`` options already replaced by the ``Profile`` they name).
        """

    @classmethod
    def dependencies(cls, profile: str, options: Mapping[str, Any]) -> tuple[Dependency, ...]:
        """Profiles whose credential this profile's fetches ask the broker for."""
        return ()

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

    # Ending leases on purpose (``Revocable``). Sources that hold any override these.

    supports_revoke: ClassVar[bool] = False

    def revoke(self, timeout: float) -> list[str]:
        """End what this instance holds upstream within ``timeout`` s; what was revoked."""
        return []

    def revokes_on_stop(self) -> bool:
        """Whether a daemon stop (``tokend stop``, SIGTERM) revokes too (default: it revokes nothing)."""
        return False

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


def _naming_missing_modules(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: BaseSource, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ImportError as e:
            raise missing(getattr(self, "profile", None), self.name, e) from None

    call._names_missing_modules = True  # type: ignore[attr-defined]
    return call
