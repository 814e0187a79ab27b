"""``source = "azure"``: Microsoft Entra ID tokens through azure-identity.

``credential`` picks the azure-identity credential: ``default``
(DefaultAzureCredential, with ``exclude_*`` keys), ``cli`` (the Azure CLI's
signed-in account), ``managed-identity``, ``workload-identity``,
``client-secret`` (secret from the OS keychain or an environment variable,
never the config file), ``certificate``, and the laptop sign-ins
``device-code`` and ``browser`` (``tokend login PROFILE`` once, silent
afterwards: see ``azure_login``).

Tokens come from ``get_token_info``: ``expires_on`` is the credential's expiry
and ``refresh_on``, when Entra or MSAL gives one, the broker's refresh time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from tokend.ci import oidc
from tokend.core.credential import Credential
from tokend.core.errors import (
    ConfigError,
    LoginRequired,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
    TokendError,
    UsageError,
)
from tokend.sources import registry
from tokend.sources.azure import credentials as azure_credentials
from tokend.sources.azure import login as azure_login
from tokend.sources.base import BaseSource, FetchRequest, LoginContext, Option, owner

KINDS = (
    "default",
    "cli",
    "managed-identity",
    "workload-identity",
    "client-secret",
    "certificate",
    "device-code",
    "browser",
)
INTERACTIVE = ("device-code", "browser")

#: Azure OpenAI / Foundry: the audience most tokend users need.
DEFAULT_SCOPE = "https://cognitiveservices.azure.com/.default"

#: What to do next when a credential has nothing to try, per kind.
NEXT_STEP: Mapping[str, str] = {
    "default": "sign in with `az login`, or pick a credential for this machine "
    "(credential = cli, managed-identity, workload-identity, client-secret, certificate, device-code)",
    "cli": "run `az login` (or `az account set` to choose the account)",
    "managed-identity": "this machine offers no managed identity; use another credential here",
    "workload-identity": "set AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID "
    "(or token_file, client_id, tenant_id)",
    "client-secret": "check tenant_id, client_id and the client secret",
    "certificate": "check tenant_id, client_id and certificate_path",
}

_OPTIONS: dict[str, Option] = {
    "credential": Option("str", default="default", choices=KINDS, help="which azure-identity credential"),
    "scopes": Option("strlist", help=f"token scopes (default: {DEFAULT_SCOPE})"),
    "resource": Option("str", help="resource URI, instead of scopes (RESOURCE/.default)"),
    "tenant_id": Option("str", help="Entra tenant (default: AZURE_TENANT_ID or the credential's own)"),
    "additionally_allowed_tenants": Option("strlist", help='other tenants tokens may be for ("*": any)'),
    "authority": Option("str", help="Entra authority host, e.g. login.microsoftonline.us (sovereign clouds)"),
    "disable_instance_discovery": Option("bool", default=False, help="trust authority without discovery"),
    "ca_bundle": Option("str", help="CA bundle for TLS to Entra (private clouds, TLS proxies)"),
    "client_id": Option("str", help="application / user-assigned identity client ID"),
    "resource_id": Option("str", help="user-assigned managed identity by resource ID"),
    "object_id": Option("str", help="user-assigned managed identity by object ID"),
    "client_secret_env": Option("str", help="environment variable holding the client secret"),
    "client_secret_service": Option("str", default="tokend", help="keychain service of the client secret"),
    "client_secret_username": Option("str", help="keychain account of the client secret (default: profile)"),
    "certificate_path": Option("str", help="PEM or PKCS12 file with the certificate and its private key"),
    "certificate_password_env": Option("str", help="environment variable holding the certificate password"),
    "send_certificate_chain": Option("bool", default=False, help="send x5c (subject name/issuer auth)"),
    "token_file": Option("str", help="federated token file (default: AZURE_FEDERATED_TOKEN_FILE)"),
    "subscription": Option("str", help="Azure CLI subscription whose account signs in (credential = cli)"),
    "allow_unencrypted_cache": Option(
        "bool", default=False, help="device-code/browser: keep the token cache in a plain 0600 file"
    ),
    **{key: Option("bool", help=f"credential = default: skip {key[8:]}") for key in
       azure_credentials.DEFAULT_EXCLUDES},
    # CI: credential = "workload-identity" with the job's OIDC token as the client assertion.
    **oidc.OPTIONS,
}


class AzureSource(BaseSource):
    """Entra ID bearer tokens from any azure-identity credential."""

    name = "azure"
    options: ClassVar[dict[str, Option]] = _OPTIONS
    supports_login: ClassVar[bool] = True  # login() explains the non-interactive kinds

    def __init__(self, profile: str, options: Mapping[str, Any], *, clock: Callable[[], float]) -> None:
        super().__init__(profile, options, clock=clock)
        # An internal profile ("corp:vault.azure.net") signs in as the profile it derives from.
        self.account = owner(profile)
        self._last_token: str | None = None
        self._cli_identity = azure_credentials.CliIdentity()

    @classmethod
    def validate(cls, profile: str, options: Mapping[str, Any]) -> None:
        where = f"profiles.{profile}"
        if options.get("scopes") and options.get("resource"):
            raise ConfigError(f"{where}.resource: set scopes or resource, not both")
        oidc.check(options, profile)
        if options.get("oidc") and options.get("credential", "default") != "workload-identity":
            raise ConfigError(f'{where}.oidc: needs credential = "workload-identity"')

    def identity(self) -> str:
        # Internal profiles derived from this one share its sign-in.
        return f"{self.name}:{self.account}"

    @property
    def kind(self) -> str:
        return str(self.settings.get("credential") or "default")

    def scopes(self) -> tuple[str, ...]:
        scopes, resource = self.settings.get("scopes"), self.settings.get("resource")
        if resource:
            return (resource.rstrip("/") + "/.default",)
        return tuple(scopes) if scopes else (DEFAULT_SCOPE,)

    # -- fetch ------------------------------------------------------------------

    def fetch(self, request: FetchRequest) -> Credential:
        scopes = self.scopes()
        now = self.clock()
        kind = self.kind
        options: dict[str, Any] = {}
        if kind == "default" and self.settings.get("tenant_id"):
            options["tenant_id"] = self.settings["tenant_id"]  # DefaultAzureCredential takes it per request
        with _translated(self, kind):
            _quiet_sdk_logs()
            if kind in INTERACTIVE:
                info = azure_login.acquire_silently(
                    kind,
                    self.settings,
                    self.account,
                    scopes,
                    timeout=request.timeout,
                    now=now,
                    newer_than=self._last_token,
                    forced=request.forced,
                    options=options,
                )
            else:
                cred = azure_credentials.build(kind, self.settings, self.account, request.timeout)
                try:
                    info = cred.get_token_info(*scopes, options=options or None)  # type: ignore[arg-type]
                finally:
                    close = getattr(cred, "close", None)
                    if close is not None:
                        close()
        self._last_token = info.token
        refresh_at = float(info.refresh_on) if info.refresh_on and info.refresh_on > now else None
        return Credential.bearer(
            info.token,
            expires_at=float(info.expires_on),
            refresh_at=refresh_at,
            issued_at=now,
            source=self.name,
        )

    # -- identity changes ---------------------------------------------------------

    def fingerprint(self) -> str | None:
        """Changes when another sign-in replaces the one the last token came from."""
        if self.kind in ("cli", "default"):
            return self._cli_identity()
        if self.kind in INTERACTIVE:
            try:
                st = os.stat(azure_login.record_path(self.account))
            except OSError:
                return "signed-out"
            return f"record:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
        return None

    # -- laptop sign-in -------------------------------------------------------------

    def login(self, ctx: LoginContext) -> None:
        if self.kind not in INTERACTIVE:
            hint = "run `az login`" if self.kind in ("cli", "default") else "it signs in without a person"
            raise UsageError(
                f"credential {self.kind!r} has no tokend login ({hint}); "
                "tokend login is for credential = device-code or browser",
                profile=self.account,
            )
        with _translated(self, self.kind, interactive_login=True):
            _quiet_sdk_logs()
            azure_login.login(
                self.kind,
                self.settings,
                self.account,
                self.scopes(),
                echo=ctx.echo,
                open_browser=ctx.open_browser,
                timeout=ctx.timeout,
            )

    def logout(self) -> None:
        if self.kind not in INTERACTIVE:
            raise UsageError(
                f"credential {self.kind!r} keeps no tokend sign-in "
                + ("(use `az logout`)" if self.kind in ("cli", "default") else ""),
                profile=self.account,
            )
        with _translated(self, self.kind):
            azure_login.logout(self.kind, self.settings, self.account)


# -- errors ---------------------------------------------------------------------------

_AADSTS = re.compile(r"AADSTS\d+")
_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
MAX_MESSAGE = 1500


@contextlib.contextmanager
def _translated(source: AzureSource, kind: str, *, interactive_login: bool = False) -> Iterator[None]:
    """Maps azure-identity's exceptions to tokend's: unavailable / failed / login required."""
    try:
        yield
    except TokendError:
        raise
    except Exception as exc:
        raise translate(exc, source.account, kind, interactive_login) from None


def translate(exc: Exception, profile: str, kind: str, interactive_login: bool = False) -> TokendError:
    """One tokend error for an exception raised by azure-identity, MSAL or the transport."""
    if isinstance(exc, ImportError):
        return registry.missing(profile, "azure", exc)
    from azure.core.exceptions import (
        ClientAuthenticationError,
        ServiceRequestError,
        ServiceResponseError,
    )
    from azure.identity import AuthenticationRequiredError, CredentialUnavailableError

    text = describe(exc)
    if "Cache encryption is impossible" in text:
        return SourceError(
            "cannot encrypt the token cache here (it needs libsecret through PyGObject and an unlocked "
            "keyring); install python3-gi and gir1.2-secret-1 where tokend's Python sees them, or set "
            f"allow_unencrypted_cache = true in profiles.{profile} (a 0600 file)",
            profile=profile,
            retryable=False,
        )
    if isinstance(exc, AuthenticationRequiredError) and not interactive_login:
        reason = _aad_code(exc)
        why = f"sign-in needed again ({reason})" if reason else "not signed in, or the sign-in expired"
        return LoginRequired(f"{why}; run: tokend login {profile}", profile=profile)
    if isinstance(exc, CredentialUnavailableError):
        step = NEXT_STEP.get(kind, f"run: tokend login {profile}")
        return SourceUnavailable(f"{text}; next: {step}", profile=profile)
    if isinstance(exc, ClientAuthenticationError):
        if "failed to retrieve a token from the included credentials" in text and "AADSTS" not in text:
            return SourceUnavailable(f"{text}; next: {NEXT_STEP[kind]}", profile=profile)
        if kind in INTERACTIVE and not interactive_login and _needs_person(text):
            return LoginRequired(f"{text}; run: tokend login {profile}", profile=profile)
        if _timed_out(exc):
            return SourceTimeout(text, profile=profile)
        return SourceError(text, profile=profile, retryable=True)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        if _timed_out(exc):
            return SourceTimeout(f"Entra ID did not answer in time: {text}", profile=profile)
        return SourceError(f"cannot reach Entra ID: {text}", profile=profile, retryable=True)
    if isinstance(exc, ValueError):
        return SourceError(f"azure {kind}: {text}", profile=profile, retryable=False)
    if isinstance(exc, OSError):
        return SourceError(f"azure {kind}: {type(exc).__name__}: {text}", profile=profile, retryable=True)
    return SourceError(f"azure {kind}: {type(exc).__name__}: {text}", profile=profile, retryable=True)


def describe(exc: BaseException) -> str:
    """azure's message for ``exc`` on one line: AADSTS code kept, tokens and noise dropped."""
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    body = _response_text(exc)
    if body and "AADSTS" in body and "AADSTS" not in text:
        text = f"{text} ({_aad_summary(body)})"
    text = _compact_chain(text) or _drop_links(text)
    text = re.sub(r"(Trace ID|Correlation ID|Timestamp):[^;\n]*", "", text)
    text = _JWT.sub("***", text)
    text = re.sub(r"\s*\n\s*", "; ", text.strip())
    text = re.sub(r"(;\s*)+", "; ", " ".join(text.split())).strip("; ")
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _compact_chain(text: str) -> str | None:
    """A chained credential's message as "X failed ... Tried: A: why; B: why" (every attempt kept)."""
    head, sep, rest = text.partition("\nAttempted credentials:\n")
    if not sep:
        return None
    entries = []
    for chunk in rest.split("\n\t"):
        name, _, why = chunk.strip().partition(": ")
        why = re.sub(rf"^{re.escape(name)} (authentication )?unavailable[.,]?\s*", "", why.strip())
        why = _drop_links(why)
        if len(why) > 160:
            why = why[:159] + "…"
        entries.append(f"{name}: {why}" if why else name)
    return f"{head.strip()} Tried: " + "; ".join(entries)


def _drop_links(text: str) -> str:
    """Drop azure's troubleshooting sentences (aka.ms links): the message must fit one line."""
    sentences = re.split(r"(?<=[.])\s+", text.strip())
    return " ".join(s for s in sentences if "https://aka.ms/" not in s)


def _response_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if response is None:
        return ""
    try:
        return str(response.text())
    except Exception:  # a response without a readable body has nothing to add
        return ""


def _aad_summary(body: str) -> str:
    import json

    try:
        doc = json.loads(body)
        desc = str(doc.get("error_description") or doc.get("error") or "")
    except ValueError:
        desc = body
    return desc.split("\r\n")[0].split("\n")[0]


def _aad_code(exc: BaseException) -> str | None:
    match = _AADSTS.search(str(exc) + " " + _response_text(exc))
    return match.group(0) if match else None


#: Entra answers meaning a person must sign in again (expired or revoked
#: refresh token, MFA or consent required, password changed).
_LOGIN_CODES = ("AADSTS50173", "AADSTS70043", "AADSTS700082", "AADSTS50076", "AADSTS50079",
                "AADSTS50078", "AADSTS65001", "AADSTS50133", "AADSTS700084", "AADSTS54005")


def _needs_person(text: str) -> bool:
    return "invalid_grant" in text or "interaction_required" in text or any(c in text for c in _LOGIN_CODES)


def _timed_out(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        name = type(cur).__name__.lower()
        if "timeout" in name or "timedout" in name:
            return True
        cur = cur.__cause__ or cur.__context__
    return "timed out" in str(exc).lower()


_QUIETED = False


def _quiet_sdk_logs() -> None:
    """azure-core logs every request at INFO and azure-identity repeats each failure we report."""
    global _QUIETED
    if _QUIETED:
        return
    for name, level in (
        ("azure.core.pipeline.policies.http_logging_policy", logging.WARNING),
        ("azure.identity", logging.ERROR),
        ("msal", logging.WARNING),
    ):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)
    _QUIETED = True
