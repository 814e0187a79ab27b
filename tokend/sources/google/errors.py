"""google-auth's failures as tokend's errors: exit 4 for a dead sign-in, else 1; no secrets."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import google.auth.exceptions as gexc

from tokend.core.errors import LoginRequired, SourceError, TokendError

if TYPE_CHECKING:
    from tokend.sources.google.tokens import Plan

#: google-auth's ADC kinds whose refresh token a person renews with ``tokend login``.
USER_KINDS = frozenset({"authorized_user", "external_account_authorized_user"})

#: Values that look like Google secrets: access tokens, refresh tokens, JWTs.
_SECRETISH = re.compile(r"ya29\.[\w.-]+|1//[\w.-]+|eyJ[\w-]*\.[\w-]*\.[\w-]*|-----BEGIN[^-]*-----[^-]*")
_LOGIN_CODES = frozenset({"invalid_grant", "invalid_rapt", "reauth_required"})
#: Answers that retrying will not change (a background retry would only add load).
_PERMANENT = frozenset(
    {
        "invalid_grant",
        "invalid_client",
        "invalid_request",
        "invalid_scope",
        "unauthorized_client",
        "access_denied",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "UNAUTHENTICATED",
        "FAILED_PRECONDITION",
    }
)


def scrub(text: str, limit: int = 300) -> str:
    text = _SECRETISH.sub("***", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail(exc: BaseException) -> tuple[str, str]:
    """(OAuth error code or "", one-line description) of a google-auth error."""
    args = exc.args
    head = str(args[0]) if args else type(exc).__name__
    data: Any = args[1] if len(args) > 1 else None
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            return "", f"{head}: {data!s}"
    code = ""
    desc = ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, str):
            code, desc = err, str(data.get("error_description") or "")
        elif isinstance(err, dict):  # Google API style: {"error": {"code", "message", "status"}}
            code, desc = str(err.get("status") or ""), str(err.get("message") or "")
    if not code:
        code = head.split(":", 1)[0].strip() if re.match(r"^[a-z_]+:", head) else ""
    text = head if not desc or desc in head else f"{head}: {desc}"
    if code and code not in text:
        text = f"{code}: {text}"
    return code, text


def map_error(exc: BaseException, *, plan: Plan, kind: str, user_based: bool) -> TokendError:
    """A google-auth failure as tokend's error: exit 4 for a dead sign-in, else 1."""
    code, text = _detail(exc)
    text = scrub(text)
    refused = isinstance(exc, (gexc.RefreshError, gexc.OAuthError))
    if refused and code in _LOGIN_CODES and user_based:
        return LoginRequired(
            f"Google refused the sign-in ({text}); run: tokend login {plan.profile}", profile=plan.profile
        )
    if isinstance(exc, gexc.TransportError):
        return SourceError(f"cannot reach Google: {text}", profile=plan.profile, retryable=True)
    if refused:
        what = f"{kind} credential" + (f", impersonating {plan.impersonate}" if plan.impersonate else "")
        return SourceError(
            f"Google refused the token request ({what}): {text}",
            profile=plan.profile,
            retryable=bool(getattr(exc, "retryable", False)) or code not in _PERMANENT,
        )
    if isinstance(exc, (gexc.DefaultCredentialsError, ValueError, KeyError, TypeError)):
        return SourceError(
            f"unusable Google credentials ({plan.adc.path}): {type(exc).__name__}: {text}",
            profile=plan.profile,
            retryable=False,
        )
    return SourceError(f"{type(exc).__name__}: {text}", profile=plan.profile, retryable=True)
