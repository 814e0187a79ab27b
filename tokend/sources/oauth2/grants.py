"""Token requests through Authlib, and the credential an answer becomes.

Authlib builds and authenticates each request (client_secret_basic or
client_secret_post, PKCE, the device grant's polling parameters); tokend adds
the deadline (every call gets what is left of the fetch's ``timeout``), the
error lines and the expiry rule: ``expires_in``, else the token's own JWT
``exp``, else the profile's ``ttl``; never later than the JWT's ``exp``, and a
token already past it by this machine's clock is refused (clock skew). ID
tokens always expire at their ``exp``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokend.core.credential import Credential
from tokend.core.errors import REDACTOR, SourceError, SourceTimeout

#: OAuth error codes that no retry can fix: the configuration or the grant is wrong.
FINAL_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_scope", "invalid_target", "unsupported_grant_type"}
)
MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class Client:
    """Who asks: the client's id, secret (already resolved) and how it authenticates."""

    client_id: str
    secret: str | None  # private_key_jwt: the PEM private key
    auth_method: str  # client_secret_basic | client_secret_post | private_key_jwt | none
    key_id: str | None = None


class OAuthRefused(SourceError):
    """The token endpoint answered an OAuth error (``error`` is its code)."""

    def __init__(self, error: str, message: str, *, retryable: bool) -> None:
        super().__init__(message, retryable=retryable)
        self.error = error


def request_token(
    client: Client, url: str, *, timeout: float, grant_type: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """POST one token request; the provider's answer, or ``OAuthRefused``/``SourceError``."""
    import requests
    from authlib.integrations.requests_client import OAuth2Session, OAuthError

    method: Any = client.auth_method
    if method == "private_key_jwt":
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        # A signed assertion (RFC 7523 §2.2) for this token endpoint, good for one request.
        method = PrivateKeyJWT(url, headers={"kid": client.key_id} if client.key_id else None, alg="RS256")
    session = OAuth2Session(
        client_id=client.client_id,
        client_secret=client.secret,
        token_endpoint_auth_method=method,
    )
    # Authlib sends a session's stored token as Authorization: keep none, never follow redirects.
    try:
        with session:
            answer = session.fetch_token(
                url,
                grant_type=grant_type,
                timeout=max(timeout, 0.05),
                allow_redirects=False,
                **{k: v for k, v in params.items() if v is not None},
            )
    except OAuthError as e:
        raise refused(client, str(e.error or "oauth_error"), e.description) from None
    except requests.Timeout:
        raise SourceTimeout(f"the token endpoint took longer than {timeout:.1f}s") from None
    except requests.RequestException as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        what = f"HTTP {status}" if status else type(e).__name__
        raise SourceError(f"the token request to {url} failed: {what}") from None
    except ValueError:
        raise SourceError(f"the token endpoint {url} did not answer JSON", retryable=False) from None
    return dict(answer)


def refused(client: Client, error: str, description: str | None) -> OAuthRefused:
    detail = f" ({description[:MAX_DESCRIPTION]})" if description else ""
    if error == "invalid_client":
        message = f"the provider refused client {client.client_id!r}: invalid_client{detail}"
    else:
        message = f"the provider refused the token request for client {client.client_id!r}: {error}{detail}"
    return OAuthRefused(error, message, retryable=error not in FINAL_ERRORS and error != "invalid_grant")


def jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (None for an opaque token).

    Only the expiry is read, to know when to fetch again: whoever receives the
    token verifies it.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def credential(
    answer: Mapping[str, Any], *, which: str, now: float, ttl: float, source: str = "oauth2"
) -> Credential:
    """The bearer credential ``which`` ("access" or "id") of a token response."""
    field = "id_token" if which == "id" else "access_token"
    token = answer.get(field)
    if not isinstance(token, str) or not token:
        hint = ' (ask for scope "openid" to get one)' if which == "id" else ""
        raise SourceError(f"the token response has no {field}{hint}", retryable=False)
    REDACTOR.add([token])
    expires_in = answer.get("expires_in")
    exp = jwt_exp(token)
    if exp is not None and exp <= now:
        # The provider's clock is behind ours by more than the token's life: serving it
        # would hand out a token every API refuses, whatever expires_in says.
        raise SourceError(
            f"the provider issued an {which} token that expired {now - exp:.0f}s ago by this "
            "machine's clock (clock skew?)",
        )
    if which == "access" and isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        # expires_in counts from now; a JWT's exp, set by a clock behind ours, may come sooner.
        expires_at = min(now + float(expires_in), exp) if exp is not None else now + float(expires_in)
    elif exp is not None:
        expires_at = exp
    else:
        expires_at = now + ttl
    return Credential.bearer(token, expires_at=expires_at, source=source, issued_at=now)


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (time.monotonic), at least a sliver; SourceTimeout when gone."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise SourceTimeout("the fetch's timeout ran out")
    return left
