"""``source = "oauth2"``: bearer tokens from any OAuth 2.0 / OpenID Connect provider.

Keycloak, Okta, Entra app registrations, Auth0, Dex, Zitadel or a gateway's own
provider: the endpoints come from ``issuer``'s discovery document or are given
one by one; the client authenticates with a secret reference (``env:``,
``file:``, ``keyring:``; never a literal). ``grant = "client_credentials"``
asks for a token for the client itself; ``token`` picks the access token or
the ID token. Authlib builds the requests (docs/sources.md says why).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, TokendError
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.oauth2.discovery import ENDPOINTS, Discovery, insecure_reason
from tokend.sources.oauth2.grants import Client, credential, remaining, request_token
from tokend.sources.static import TTL_OPTION
from tokend.sources.vault.auth import read_ref

GRANTS = ("client_credentials",)
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SECRET_REFS = ("env:", "file:", "keyring:")


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
        "client_auth": Option(
            "str", default="client_secret_basic", choices=AUTH_METHODS, help="how the client secret is sent"
        ),
        "grant": Option("str", default="client_credentials", choices=GRANTS, help="the OAuth grant to use"),
        "scopes": Option("strlist", help='scopes to ask for, e.g. ["openid", "ai.invoke"]'),
        "resource": Option("str", help="RFC 8707 resource indicator: the API the token is for"),
        "audience": Option("str", help="the API the token is for, for providers that call it audience"),
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
        if options.get("grant") == "client_credentials":
            if not secret:
                raise ConfigError(f"{where}.client_secret: required by the client_credentials grant")
            if options.get("token") == "id":
                raise ConfigError(f"{where}.token: the client_credentials grant issues no ID token")

    def client(self) -> Client:
        ref = self.settings.get("client_secret")
        secret = read_ref(str(ref), "client_secret", environ=self.environ) if ref else None
        method = str(self.settings["client_auth"]) if secret else "none"
        return Client(client_id=str(self.settings["client_id"]), secret=secret, auth_method=method)

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
