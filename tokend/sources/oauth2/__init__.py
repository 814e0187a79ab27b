"""``source = "oauth2"``: bearer tokens from any OAuth 2.0 / OpenID Connect provider.

Keycloak, Okta, Entra app registrations, Auth0, Dex, Zitadel or a gateway's own
provider: the endpoints come from ``issuer``'s discovery document or are given
one by one; the client authenticates with a secret reference (``env:``,
``file:``, ``keyring:``; never a literal). ``grant = "client_credentials"``
asks for a token for the client itself; ``grant = "device_code"`` signs a
person in once (``tokend login``) and keeps the refresh token in the OS
keychain, the daemon refreshing silently from then on; ``grant =
"refresh_token"`` starts from a refresh token given by reference. Profiles of
one identity (provider and client) share one sign-in; ``token`` picks the
access token or the ID token. Authlib builds the requests (docs/sources.md says why).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, LoginRequired, TokendError, UsageError
from tokend.sources.base import BaseSource, Dependency, FetchRequest, LoginContext, Option, owner
from tokend.sources.oauth2 import device, loopback
from tokend.sources.oauth2.discovery import ENDPOINTS, Discovery, insecure_reason
from tokend.sources.oauth2.grants import Client, OAuthRefused, credential, remaining, request_token
from tokend.sources.oauth2.siblings import REFRESHING, legacy_names, login_target
from tokend.sources.oauth2.store import RefreshStore, fingerprint, identity_of
from tokend.sources.refs import check_ref, read_ref
from tokend.sources.static import TTL_OPTION

GRANTS = (
    "client_credentials",
    "device_code",
    "authorization_code",
    "refresh_token",
    "token_exchange",
    "jwt_bearer",
)
#: Grants that send another profile's token (``subject``): as subject_token, or as the assertion.
SUBJECT_GRANTS = ("token_exchange", "jwt_bearer")
#: Grants a person signs in for once (``tokend login``); fetches then use the refresh token.
INTERACTIVE = ("device_code", "authorization_code")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
SECRET_REFS = ("env:", "file:", "keyring:")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_TYPE = "urn:ietf:params:oauth:token-type:"
SUBJECT_TYPES = ("jwt", "access_token", "id_token")
#: Sources whose profile can be a token exchange's subject: those that serve bearer tokens.
SUBJECT_SOURCES = ("oauth2", "google", "azure", "command", "env", "file", "keyring")


class OAuth2Source(BaseSource):
    """Tokens from an OAuth 2.0 / OpenID Connect token endpoint."""

    name = "oauth2"
    options: ClassVar[dict[str, Option]] = {
        "issuer": Option("str", help="the provider's issuer URL: endpoints from its OpenID discovery"),
        "token_endpoint": Option("str", help="the token endpoint, when there is no discovery"),
        "device_authorization_endpoint": Option("str", help="the device authorization endpoint"),
        "authorization_endpoint": Option("str", help="the authorization endpoint"),
        "client_id": Option("str", required=True, help="the OAuth client ID"),
        "client_secret": Option("str", help="env:VAR, file:PATH or keyring:USER (omit for a public client)"),
        "client_key": Option(
            "str",
            help="client_auth = private_key_jwt: the PEM private key, as env:VAR, file:PATH or keyring:USER",
        ),
        "client_key_id": Option("str", help="client_auth = private_key_jwt: the key's kid, when it has one"),
        "client_auth": Option(
            "str", default="client_secret_basic", choices=AUTH_METHODS, help="how the client secret is sent"
        ),
        "grant": Option("str", default="client_credentials", choices=GRANTS, help="the OAuth grant to use"),
        "scopes": Option("strlist", help='scopes to ask for, e.g. ["openid", "ai.invoke"]'),
        "resource": Option("str", help="RFC 8707 resource indicator: the API the token is for"),
        "audience": Option("str", help="the API the token is for, for providers that call it audience"),
        "refresh_token": Option(
            "str",
            help='grant = "refresh_token": env:VAR, file:PATH or keyring:USER holding the refresh token',
        ),
        "subject": Option(
            "str",
            profile_of=SUBJECT_SOURCES,
            help="grant = token_exchange / jwt_bearer: the profile whose token is sent (RFC 8693, RFC 7523)",
        ),
        "subject_token_type": Option(
            "str",
            default="jwt",
            choices=SUBJECT_TYPES,
            help="grant = token_exchange: what the subject token is",
        ),
        "token": Option(
            "str", default="access", choices=("access", "id"), help="serve the access or the ID token"
        ),
        "ttl": TTL_OPTION,
    }

    def __init__(
        self,
        profile: str,
        options: Mapping[str, Any],
        *,
        clock: Callable[[], float],
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        super().__init__(profile, options, clock=clock)
        self.environ = environ
        self.discovery = Discovery(options)
        identity = identity_of(options)
        self.store = RefreshStore(identity, legacy=lambda: legacy_names(profile, identity))

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        where = f"profiles.{profile}"
        if not options.get("issuer") and not options.get("token_endpoint"):
            raise ConfigError(f"{where}: oauth2 needs issuer (OpenID discovery) or token_endpoint")
        for key in ("issuer", *ENDPOINTS):
            url = options.get(key)
            if url and (reason := insecure_reason(str(url))):
                raise ConfigError(f"{where}.{key}: {reason}")
        secret = options.get("client_secret")
        if secret and not str(secret).startswith(SECRET_REFS):
            raise ConfigError(
                f"{where}.client_secret: expected env:VAR, file:PATH or keyring:USER, not the secret itself"
            )
        pem = options.get("client_key")
        if pem and not str(pem).startswith(SECRET_REFS):
            raise ConfigError(
                f"{where}.client_key: expected env:VAR, file:PATH or keyring:USER, not the key itself"
            )
        if (options.get("client_auth") == "private_key_jwt") != bool(pem):
            raise ConfigError(
                f"{where}.client_key: needed with client_auth = 'private_key_jwt', and only then"
            )
        if pem and secret:
            raise ConfigError(f"{where}.client_secret: a private_key_jwt client has a client_key, no secret")
        secret = secret or pem
        if options.get("grant") == "client_credentials":
            if not secret:
                raise ConfigError(
                    f"{where}.client_secret: required by the client_credentials grant "
                    "(or client_auth = 'private_key_jwt' with a client_key)"
                )
            if options.get("token") == "id":
                raise ConfigError(f"{where}.token: the client_credentials grant issues no ID token")
        for grant, endpoint in (
            ("device_code", "device_authorization_endpoint"),
            ("authorization_code", "authorization_endpoint"),
        ):
            if options.get("grant") == grant and not (options.get("issuer") or options.get(endpoint)):
                raise ConfigError(f"{where}.{endpoint}: required by grant = {grant!r} without an issuer")
        if (options.get("grant") == "refresh_token") != (options.get("refresh_token") is not None):
            raise ConfigError(f"{where}.refresh_token: needed with grant = 'refresh_token', and only then")
        check_ref(options.get("refresh_token"), "refresh_token", profile)
        exchange = options.get("grant") in SUBJECT_GRANTS
        if exchange and options.get("subject") is None:
            raise ConfigError(
                f"{where}.subject: required by grant = {options.get('grant')!r} (the profile to send)"
            )
        if not exchange and options.get("subject") is not None:
            raise ConfigError(f"{where}.subject: only for grant = 'token_exchange' or 'jwt_bearer'")

    @classmethod
    def dependencies(cls, profile: str, options: Mapping[str, Any]) -> tuple[Dependency, ...]:
        subject = options.get("subject")
        if subject is None:
            return ()
        return (Dependency(subject.name, subject.source, subject.options, settings_of=subject.name),)

    def client(self) -> Client:
        key = "client_key" if self.settings.get("client_key") else "client_secret"
        ref = self.settings.get(key)
        secret = read_ref(str(ref), key, environ=self.environ) if ref else None
        method = str(self.settings["client_auth"]) if secret else "none"
        return Client(
            client_id=str(self.settings["client_id"]),
            secret=secret,
            auth_method=method,
            key_id=self.settings.get("client_key_id"),
        )

    def target(self) -> dict[str, Any]:
        """The token request's scope, resource and audience parameters (None: not sent)."""
        scopes = list(self.settings.get("scopes") or [])
        return {
            "scope": " ".join(scopes) if scopes else None,
            "resource": self.settings.get("resource"),
            "audience": self.settings.get("audience"),
        }

    def fetch(self, request: FetchRequest) -> Credential:
        try:
            return self._fetch(request)
        except TokendError as e:
            if e.profile is None:
                e.profile = self.profile
            raise

    def _fetch(self, request: FetchRequest) -> Credential:
        deadline = time.monotonic() + request.timeout
        client = self.client()
        endpoints = self.discovery.endpoints(remaining(deadline))
        if self.settings["grant"] in REFRESHING:
            answer = self._refresh(client, endpoints.token, deadline)
        elif self.settings["grant"] == "token_exchange":
            subject = request.credential_of(self.settings["subject"].name)
            answer = request_token(
                client,
                endpoints.token,
                timeout=remaining(deadline),
                grant_type=TOKEN_EXCHANGE,
                params={
                    "subject_token": subject.primary,
                    "subject_token_type": TOKEN_TYPE + str(self.settings["subject_token_type"]),
                    **self.target(),
                },
            )
        elif self.settings["grant"] == "jwt_bearer":
            assertion = request.credential_of(self.settings["subject"].name)
            answer = request_token(
                client,
                endpoints.token,
                timeout=remaining(deadline),
                grant_type=JWT_BEARER,
                params={"assertion": assertion.primary, **self.target()},
            )
        else:
            answer = request_token(
                client,
                endpoints.token,
                timeout=remaining(deadline),
                grant_type="client_credentials",
                params=self.target(),
            )
        return credential(
            answer, which=str(self.settings["token"]), now=self.clock(), ttl=float(self.settings["ttl"])
        )

    def _refresh(self, client: Client, url: str, deadline: float) -> dict[str, Any]:
        """A new access token from the identity's refresh token, the rotated one stored at once.

        The store is read under the identity's lock on every refresh: another
        profile of the identity may have rotated the token since.
        """
        with self.store.refreshing(remaining(deadline)):
            token, origin = self._refresh_token()
            try:
                answer = request_token(
                    client,
                    url,
                    timeout=remaining(deadline),
                    grant_type="refresh_token",
                    params={"refresh_token": token, **self.target()},
                )
            except OAuthRefused as e:
                if e.error != "invalid_grant":
                    raise
                stored = self.store.get()
                if stored is not None and stored.token == token:
                    self.store.forget()  # a configured token refused leaves a signed-in one alone
                raise LoginRequired(self._refused_line()) from None
            new = answer.get("refresh_token")
            if isinstance(new, str) and new and new != token:
                self.store.put(new, origin=origin)
        return answer

    def _refresh_token(self) -> tuple[str, str | None]:
        """The refresh token to present, and the fingerprint of the configured one it descends from.

        ``grant = "refresh_token"``: the stored token rotated from the configured
        one wins (the reference still holds the used, dead original); a new value
        put in the reference wins over a token rotated from an older one.
        """
        stored = self.store.get()
        ref = self.settings.get("refresh_token")
        if ref is None:
            if stored is None:
                raise LoginRequired(f"not signed in; run: tokend login {owner(self.profile)}")
            return stored.token, stored.origin
        given = read_ref(str(ref), "refresh_token", environ=self.environ)
        origin = fingerprint(given)
        if stored is not None and stored.origin == origin:
            return stored.token, origin
        return given, origin

    def _refused_line(self) -> str:
        ref = self.settings.get("refresh_token")
        if ref is not None:
            return (
                f"the provider refused the refresh token (invalid_grant: expired or revoked); "
                f"put a new one in {ref}"
            )
        return f"the sign-in has expired or was revoked; run: tokend login {owner(self.profile)}"

    def identity(self) -> str:
        return identity_of(self.settings)

    # -- tokend login / logout --------------------------------------------------------------

    supports_login = True

    def login(self, ctx: LoginContext) -> None:
        try:
            self._login(ctx)
        except TokendError as e:
            if e.profile is None:  # the provider's refusal names the client; the line names the profile
                e.profile = self.profile
            raise

    def _login(self, ctx: LoginContext) -> None:
        if self.settings["grant"] == "refresh_token":
            raise UsageError(
                f"grant = 'refresh_token' needs no sign-in: it starts from {self.settings['refresh_token']}",
                profile=self.profile,
            )
        if self.settings["grant"] not in INTERACTIVE:
            raise UsageError(
                f"grant = {self.settings['grant']!r} needs no sign-in: the client authenticates itself",
                profile=self.profile,
            )
        client = self.client()
        endpoints = self.discovery.endpoints(min(device.CALL_TIMEOUT, ctx.timeout))
        target = login_target(self.profile, self.identity(), self.target(), ctx.profiles)
        if self.settings["grant"] == "authorization_code":
            if not endpoints.authorization:
                raise UsageError("the provider has no authorization_endpoint", profile=self.profile)
            answer = loopback.login(
                ctx,
                client,
                authorization_endpoint=endpoints.authorization,
                token_endpoint=endpoints.token,
                params=target,
            )
        else:
            if not endpoints.device_authorization:
                raise UsageError("the provider has no device_authorization_endpoint", profile=self.profile)
            answer = device.login(
                ctx,
                client,
                device_endpoint=endpoints.device_authorization,
                token_endpoint=endpoints.token,
                params=target,
            )
        refresh = answer.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise UsageError(
                'the provider issued no refresh token: add "offline_access" to scopes', profile=self.profile
            )
        with self.store.refreshing(ctx.timeout):  # not while a daemon presents the old one
            self.store.put(refresh)

    def logout(self) -> None:
        self.store.forget()
