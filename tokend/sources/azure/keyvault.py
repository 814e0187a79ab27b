"""``source = "azure-keyvault"``: a secret from Azure Key Vault.

``GET {vault_url}/secrets/{name}/{version}?api-version=7.4`` through
azure-core's pipeline (already installed with azure-identity: no
azure-keyvault-secrets for one call). The Entra token for the vault's scope
comes from the broker (tokend/sources/tokensecret.py): from an azure profile
(``via = "PROFILE"``: any of its credentials, its sign-in included), else
DefaultAzureCredential.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, SourceError, SourceTimeout
from tokend.sources import secretvalue
from tokend.sources.base import Option
from tokend.sources.tokensecret import TokenSecretSource

API_VERSION = "7.4"
DEFAULT_SCOPE = "https://vault.azure.net/.default"
CONNECT_CAP = 5.0

_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z]{0,64}$")
_Answer = tuple[Any, str]  # (JSON document or None, WWW-Authenticate)


class AzureKeyVaultSource(TokenSecretSource[_Answer]):
    """A Key Vault secret, re-read every ``ttl``; authenticated as an azure profile."""

    name = "azure-keyvault"
    token_source = "azure"
    options: ClassVar[dict[str, Option]] = {
        "vault_url": Option("str", required=True, help="the vault, https://NAME.vault.azure.net"),
        "name": Option("str", required=True, help="the secret's name"),
        "version": Option("str", help="a specific version (default: the current one)"),
        "via": Option(
            "str",
            profile_of=("azure",),
            help="azure profile whose credential reads it (default: DefaultAzureCredential)",
        ),
        "scope": Option("str", help="token scope (default: from the vault's cloud, e.g. vault.azure.net)"),
        "json_key": secretvalue.JSON_KEY_OPTION,
        "ttl": secretvalue.TTL_OPTION,
    }
    supports_login: ClassVar[bool] = True  # the azure profile's sign-in (device code, browser)

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        super().__init__(profile, options, clock=clock)
        self.vault_url = f"https://{urlsplit(options['vault_url']).netloc}"
        self.scope = self.scope_of(options)

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        where = f"profiles.{profile}"
        url = urlsplit(str(options.get("vault_url") or ""))
        if url.scheme != "https" or not url.hostname:
            raise ConfigError(
                f"{where}.vault_url: expected https://VAULT.vault.azure.net, got {url.geturl()!r}"
            )
        if not _NAME.match(str(options.get("name") or "")):
            raise ConfigError(f"{where}.name: a Key Vault secret name is 1-127 letters, digits and dashes")
        if not _VERSION.match(str(options.get("version") or "")):
            raise ConfigError(f"{where}.version: expected a version id (letters and digits)")

    @classmethod
    def scope_of(cls, options: Mapping[str, Any]) -> str:
        return str(options.get("scope") or scope_for(urlsplit(options["vault_url"]).hostname or ""))

    @classmethod
    def token_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"scopes": (cls.scope_of(options),), "resource": None}

    @classmethod
    def token_label(cls, options: Mapping[str, Any]) -> str:
        return cls.scope_of(options).removeprefix("https://").removesuffix("/.default")

    @property
    def what(self) -> str:
        version = self.settings.get("version")
        return f"secret {self.settings['name']!r} in {self.vault_url}" + (
            f" (version {version})" if version else ""
        )

    def call(self, token: Credential, deadline: float, timeout: float) -> tuple[int, _Answer]:
        return self._get(token, deadline, timeout)

    def read(self, status: int, answer: _Answer) -> str:
        return self._value(status, *answer)

    # -- internals ------------------------------------------------------------------------

    def _get(self, token: Credential, deadline: float, timeout: float) -> tuple[int, tuple[Any, str]]:
        from azure.core import PipelineClient
        from azure.core.credentials import AccessToken
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError
        from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy, UserAgentPolicy
        from azure.core.rest import HttpRequest

        from tokend import __version__

        class _Minted:
            """The token the azure source minted, as azure-core's credential protocol."""

            def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
                return AccessToken(token.fields["token"], int(token.expires_at or time.time() + 600))

        left = deadline - time.monotonic()
        if left <= 0:
            raise SourceTimeout(f"Key Vault: no time left within {timeout:g}s")
        ca_bundle = self.token_settings.get("ca_bundle")
        policies = [
            UserAgentPolicy(f"tokend/{__version__}"),
            # One retry of a dropped connection; none on status (azure-core would
            # sleep for Retry-After without a cap), and all within what is left.
            RetryPolicy(retry_total=1, retry_connect=1, retry_read=0, retry_status=0, timeout=left),
            # Refuses to send the token over plain http.
            BearerTokenCredentialPolicy(_Minted(), self.scope),
        ]
        kwargs: dict[str, Any] = {}
        if ca_bundle:
            import os

            kwargs["connection_verify"] = os.path.expanduser(ca_bundle)
        path = f"/secrets/{quote(self.settings['name'])}/{quote(self.settings.get('version') or '')}"
        request = HttpRequest("GET", self.vault_url + path, params={"api-version": API_VERSION})
        with PipelineClient(self.vault_url, policies=policies, **kwargs) as client:
            try:
                response = client.send_request(
                    request, connection_timeout=min(CONNECT_CAP, left / 2), read_timeout=left
                )
            except (ServiceRequestError, ServiceResponseError) as e:
                if "timed out" in str(e).lower() or "timeout" in type(e.inner_exception).__name__.lower():
                    raise SourceTimeout(f"Key Vault did not answer within {timeout:g}s") from None
                raise SourceError(f"cannot reach Key Vault at {self.vault_url}: {type(e).__name__}") from None
            try:
                doc = response.json()
            except ValueError:
                doc = None
            return response.status_code, (doc, response.headers.get("WWW-Authenticate", ""))

    def _value(self, status: int, doc: Any, challenge: str) -> str:
        if status == 200 and isinstance(doc, dict) and isinstance(doc.get("value"), str):
            return str(doc["value"])
        error = doc.get("error") if isinstance(doc, dict) else None
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        message = " ".join(str(error.get("message") or "").split())[:300] if isinstance(error, dict) else ""
        inner = error.get("innererror") if isinstance(error, dict) else None
        if isinstance(inner, dict) and inner.get("code"):
            code = f"{code}/{inner['code']}"
        if status == 404:
            raise secretvalue.not_found(self.what)
        if status == 403:
            raise SourceError(f"access denied reading {self.what}: {code}: {message}", retryable=False)
        if status == 401:
            authority = re.search(r'authorization(?:_uri)?="([^"]+)"', challenge)
            hint = f" (the vault's tenant: {authority.group(1)})" if authority else ""
            raise SourceError(
                f"Key Vault refused the token for {self.what}{hint}: {message}", retryable=False
            )
        detail = f"{code}: {message}" if code else message or "no error details"
        raise SourceError(
            f"Key Vault answered HTTP {status} for {self.what}: {detail}",
            retryable=status >= 500 or status in (408, 429),
        )


def scope_for(host: str) -> str:
    """The token scope of a vault host: vault.azure.net, or the sovereign cloud's own."""
    first, _, rest = host.partition(".")
    if rest.startswith("vault.") and first:
        return f"https://{rest}/.default"
    return DEFAULT_SCOPE
