"""``tokend login`` for ``grant = "device_code"`` (RFC 8628): a code to enter on another screen.

The device authorization request and the polling token requests go through
Authlib's session (client authentication, error parsing); tokend prints the
URL and the code (stderr, flushed), opens the browser where it can, honours
``interval`` and ``slow_down`` and stops at the code's expiry or the login's
timeout, whichever comes first.
"""

from __future__ import annotations

import contextlib
import time
import webbrowser
from collections.abc import Mapping
from typing import Any

from tokend.core.errors import SourceError, SourceTimeout, UsageError
from tokend.sources.base import LoginContext
from tokend.sources.oauth2.grants import Client, OAuthRefused, refused, request_token

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL = 5.0
CALL_TIMEOUT = 30.0


def authorize(client: Client, url: str, params: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """The device authorization answer: device_code, user_code, verification_uri, ..."""
    import requests

    data = {"client_id": client.client_id, **{k: v for k, v in params.items() if v is not None}}
    auth: tuple[str, str] | None = None
    if client.secret and client.auth_method == "client_secret_basic":
        auth = (client.client_id, client.secret)
    elif client.secret:
        data["client_secret"] = client.secret
    try:
        r = requests.post(url, data=data, auth=auth, timeout=timeout, allow_redirects=False)
        answer = r.json()
    except requests.Timeout:
        raise SourceTimeout(f"the device authorization endpoint took longer than {timeout:.0f}s") from None
    except requests.RequestException as e:
        raise SourceError(f"the device authorization request to {url} failed: {type(e).__name__}") from None
    except ValueError:
        raise SourceError(f"the device authorization endpoint {url} did not answer JSON") from None
    if not isinstance(answer, dict):
        raise SourceError(f"the device authorization endpoint {url} did not answer a JSON object")
    if "error" in answer:
        raise refused(client, str(answer["error"]), answer.get("error_description"))
    for key in ("device_code", "user_code", "verification_uri"):
        if not isinstance(answer.get(key), str):
            raise SourceError(f"the device authorization answer has no {key}", retryable=False)
    return answer


def login(
    ctx: LoginContext, client: Client, *, device_endpoint: str, token_endpoint: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Run the device flow; the token response once the person has approved."""
    started = time.monotonic()
    grant = authorize(client, device_endpoint, params, min(CALL_TIMEOUT, ctx.timeout))
    uri = str(grant["verification_uri"])
    complete = grant.get("verification_uri_complete")
    ctx.echo(f"To sign in for {ctx.profile}, open {uri} and enter the code {grant['user_code']}")
    if ctx.open_browser:
        with contextlib.suppress(webbrowser.Error):  # the URL is printed: nothing lost without a browser
            webbrowser.open(str(complete or uri))
    expires_in = grant.get("expires_in")
    life = float(expires_in) if isinstance(expires_in, (int, float)) else ctx.timeout
    deadline = started + min(life, ctx.timeout)
    interval = grant.get("interval")
    wait = float(interval) if isinstance(interval, (int, float)) and interval > 0 else DEFAULT_INTERVAL
    while True:
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
        left = deadline - time.monotonic()
        if left <= 0:
            raise expired(ctx.profile)
        try:
            return request_token(
                client,
                token_endpoint,
                timeout=min(CALL_TIMEOUT, left),
                grant_type=DEVICE_GRANT,
                params={"device_code": grant["device_code"]},
            )
        except OAuthRefused as e:
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":
                wait += 5  # RFC 8628 §3.5
                continue
            if e.error == "access_denied":
                raise UsageError("the sign-in was denied", profile=ctx.profile) from None
            if e.error == "expired_token":
                raise expired(ctx.profile) from None
            raise


def expired(profile: str) -> UsageError:
    return UsageError(
        f"the sign-in code expired before it was approved; run: tokend login {profile}", profile=profile
    )
