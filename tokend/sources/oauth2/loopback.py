"""``tokend login`` for ``grant = "authorization_code"``: PKCE (S256) with a 127.0.0.1 redirect.

Authlib builds the authorization URL (``code_challenge``, ``state``) and the
code exchange; tokend listens on 127.0.0.1 only, on a port the system picks
(RFC 8252 §7.3: providers accept any port for loopback redirects), checks
``state`` in constant time and gives up at the login's timeout.
"""

from __future__ import annotations

import contextlib
import hmac
import http.server
import secrets
import time
import urllib.parse
import webbrowser
from collections.abc import Mapping
from typing import Any

from tokend.core.errors import UsageError
from tokend.sources.base import LoginContext
from tokend.sources.oauth2.grants import Client, request_token

CALL_TIMEOUT = 30.0
PAGE = b"<!doctype html><title>tokend</title><p>%s You can close this tab.</p>\n"


class _Callback(http.server.BaseHTTPRequestHandler):
    """Takes the one redirect back from the provider; ignores anything else (favicon, probes)."""

    server: _Server

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/callback":
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.server.answer = query
        ok = "code" in query
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(PAGE % (b"Signed in." if ok else b"The sign-in did not complete."))

    def log_message(self, format: str, *args: Any) -> None:
        return  # the query holds the code: never log it


class _Server(http.server.HTTPServer):
    answer: dict[str, str] | None = None


def login(
    ctx: LoginContext,
    client: Client,
    *,
    authorization_endpoint: str,
    token_endpoint: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """Run the browser sign-in; the token response for the code it brings back."""
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session

    deadline = time.monotonic() + ctx.timeout
    with _Server(("127.0.0.1", 0), _Callback) as server:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
        verifier = generate_token(64)
        state = secrets.token_urlsafe(24)
        extra = {k: v for k, v in params.items() if v is not None}
        if "offline_access" in str(extra.get("scope", "")).split():
            extra["prompt"] = "consent"  # OpenID Connect §11: offline_access needs consent
        session = OAuth2Session(
            client_id=client.client_id, redirect_uri=redirect_uri, code_challenge_method="S256"
        )
        with session:
            url, _ = session.create_authorization_url(
                authorization_endpoint, state=state, code_verifier=verifier, **extra
            )
        ctx.echo(f"To sign in for {ctx.profile}, open {url}")
        if ctx.open_browser:
            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(url)
        while server.answer is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UsageError(f"no sign-in within {ctx.timeout:.0f}s", profile=ctx.profile)
            server.timeout = min(left, 1.0)
            server.handle_request()
        answer = server.answer
    if not hmac.compare_digest(answer.get("state", ""), state):
        raise UsageError("the sign-in answer's state does not match: try again", profile=ctx.profile)
    if "code" not in answer:
        error = answer.get("error", "no code")
        denied = "the sign-in was denied" if error == "access_denied" else f"the sign-in failed: {error}"
        raise UsageError(denied, profile=ctx.profile)
    return request_token(
        client,
        token_endpoint,
        timeout=min(CALL_TIMEOUT, max(deadline - time.monotonic(), 1.0)),
        grant_type="authorization_code",
        params={"code": answer["code"], "redirect_uri": redirect_uri, "code_verifier": verifier},
    )
