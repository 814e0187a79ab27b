"""One base for secrets APIs read with another profile's access token (Key Vault, Secret Manager).

The token comes from the broker (``FetchRequest.credential_of``), so it is
cached, single-flight, backed off and shown in ``tokend status`` like any
credential. It is the ``via`` profile's own when that profile already serves
the token the API takes; otherwise the loader adds an internal profile (a name
with ``:``, which users cannot write) with ``via``'s settings, or the token
source's defaults, and the API's scope: ``corp:vault.azure.net``,
``azure:vault.azure.net``. Sign-in, identity and fingerprint are that
profile's source's.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from tokend.core.credential import Credential
from tokend.core.errors import TokendError
from tokend.sources import registry, secretvalue
from tokend.sources.base import BaseSource, Dependency, FetchRequest, LoginContext

_Answer = TypeVar("_Answer")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TokenSecretSource(BaseSource, Generic[_Answer]):
    """A secret read with an access token of ``token_source``, re-read every ``ttl``.

    Subclasses say which token they need (``token_options``, ``token_label``),
    how one API call goes (``call``) and what its answer means (``read``).
    """

    #: The source of the profile whose token authenticates the call (``via``'s source).
    token_source: ClassVar[str] = ""

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        super().__init__(profile, options, clock=clock)
        self.token_profile = self.token_dependency(profile, options)
        cls = registry.lookup(self.token_profile.source, profile=profile)
        assert cls is not None  # a built-in source
        # Only for identity/fingerprint/login/logout: fetches go through the broker.
        self.token_source_instance = cls(self.token_profile.name, self.token_profile.options, clock=clock)

    # -- what subclasses say -------------------------------------------------------------

    @classmethod
    def token_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The token source's options this API needs whatever the profile serves (scopes)."""
        raise NotImplementedError

    @classmethod
    def token_label(cls, options: Mapping[str, Any]) -> str:
        """What the token is for, in the internal profile's name (``vault.azure.net``)."""
        raise NotImplementedError

    def call(self, token: Credential, deadline: float, timeout: float) -> tuple[int, _Answer]:
        """One API call with ``token``, done by ``deadline`` (time.monotonic()): (HTTP status, answer)."""
        raise NotImplementedError

    def read(self, status: int, answer: _Answer) -> str:
        """The secret's text in a successful answer; else the error it means."""
        raise NotImplementedError

    @property
    def what(self) -> str:
        """The secret, in messages."""
        raise NotImplementedError

    # -- the token profile -----------------------------------------------------------------

    @classmethod
    def token_dependency(cls, profile: str, options: Mapping[str, Any]) -> Dependency:
        """The profile whose token this profile's fetches ask the broker for."""
        wanted = cls.token_options(options)
        label = cls.token_label(options)
        safe = _UNSAFE.sub("-", label).strip("-") or "token"
        if safe != label:  # keep names of different scopes apart
            safe += "-" + hashlib.sha256(label.encode()).hexdigest()[:8]
        via = options.get("via")
        if via is not None:
            merged = {**via.options, **wanted}
            if merged == dict(via.options):  # via serves exactly this token: share it
                return Dependency(via.name, via.source, via.options, settings_of=via.name)
            return Dependency(f"{via.name}:{safe}", via.source, merged, settings_of=via.name)
        token_cls = registry.lookup(cls.token_source, profile=profile)
        assert token_cls is not None  # a built-in source
        defaults = {key: opt.default for key, opt in token_cls.options.items()}
        # Every profile without via shares one token of the source's defaults.
        return Dependency(f"{cls.token_source}:{safe}", cls.token_source, {**defaults, **wanted})

    @classmethod
    def dependencies(cls, profile: str, options: Mapping[str, Any]) -> tuple[Dependency, ...]:
        return (cls.token_dependency(profile, options),)

    @property
    def token_settings(self) -> Mapping[str, Any]:
        """The token profile's options (TLS bundle, quota project)."""
        return self.token_profile.options

    def _token(self, request: FetchRequest, *, force: bool) -> Credential:
        try:
            return request.credential_of(self.token_profile.name, force=force)
        except TokendError as e:
            via = self.settings.get("via")
            prefix = f"{self.token_source} profile {via.name!r}" if via is not None else ""
            raise secretvalue.reprofiled(e, self.profile, prefix) from None

    # -- the Source protocol ---------------------------------------------------------------

    def fetch(self, request: FetchRequest) -> Credential:
        deadline = time.monotonic() + request.timeout
        try:
            status, answer = self.call(self._token(request, force=False), deadline, request.timeout)
            if status == 401:
                # Revoked, expired early, another tenant: once more with a new token
                # (a forced refresh of the token profile, under its refresh_limit).
                status, answer = self.call(self._token(request, force=True), deadline, request.timeout)
            return secretvalue.static(
                self.read(status, answer),
                json_key=self.settings["json_key"],
                now=self.clock(),
                ttl=self.settings["ttl"],
                source=self.name,
                what=self.what,
            )
        except TokendError as e:
            if e.profile is None:
                e.profile = self.profile
            raise

    # -- the token profile's capabilities --------------------------------------------------

    def fingerprint(self) -> str | None:
        """The token profile's identity (another account: the cached secret is dropped)."""
        return self.token_source_instance.fingerprint()

    def identity(self) -> str:
        return self.token_source_instance.identity()

    def login(self, ctx: LoginContext) -> None:
        self.token_source_instance.login(ctx)

    def logout(self) -> None:
        self.token_source_instance.logout()
