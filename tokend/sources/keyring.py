"""``source = "keyring"``: a static secret in the OS keychain (``tokend secret set``)."""

from __future__ import annotations

from typing import Any, ClassVar

from tokend import ci
from tokend.core.credential import Credential
from tokend.core.errors import SourceError, SourceUnavailable
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.static import TTL_OPTION, static_secret

DEFAULT_SERVICE = "tokend"


class KeyringSource(BaseSource):
    name = "keyring"
    options: ClassVar[dict[str, Option]] = {
        "service": Option("str", default=DEFAULT_SERVICE, help="keychain service name"),
        "username": Option("str", help="keychain account (default: the profile name)"),
        "ttl": TTL_OPTION,
    }

    @property
    def account(self) -> tuple[str, str]:
        return self.settings["service"], self.settings["username"] or self.profile

    def fetch(self, request: FetchRequest) -> Credential:
        self._not_in_ci()
        keyring, errors = _keyring()
        service, user = self.account
        try:
            value = keyring.get_password(service, user)
        except errors.KeyringError as e:
            raise SourceError(f"keychain: {type(e).__name__}: {e}", profile=self.profile) from None
        if not value:
            raise SourceUnavailable(
                f"no secret in the keychain for {service}/{user}; run: tokend secret set {self.profile}",
                profile=self.profile,
            )
        return static_secret(value, now=self.clock(), ttl=self.settings["ttl"], source=self.name)

    def store(self, value: str) -> None:
        self._not_in_ci()
        keyring, errors = _keyring()
        service, user = self.account
        try:
            keyring.set_password(service, user, value)
        except errors.KeyringError as e:
            raise SourceError(f"keychain: {type(e).__name__}: {e}", profile=self.profile) from None

    def delete(self) -> bool:
        self._not_in_ci()
        keyring, errors = _keyring()
        service, user = self.account
        try:
            keyring.delete_password(service, user)
        except errors.PasswordDeleteError:
            return False
        except errors.KeyringError as e:
            raise SourceError(f"keychain: {type(e).__name__}: {e}", profile=self.profile) from None
        return True


    def _not_in_ci(self) -> None:
        # A CI runner has no unlocked keychain: probing one can hang on D-Bus or prompt.
        if ci.active():
            raise SourceUnavailable(
                "CI=true: tokend does not use the OS keychain in CI jobs; give the secret in an "
                'environment variable (source = "env") or federate with oidc',
                profile=self.profile,
            )


def _keyring() -> tuple[Any, Any]:
    # Imported lazily: the keyring backends probe D-Bus and the platform on import.
    import keyring
    import keyring.errors

    return keyring, keyring.errors
