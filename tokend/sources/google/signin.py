"""``tokend login`` for google profiles: produce an ``authorized_user`` ADC file.

With gcloud on PATH (and the profile reading gcloud's own ADC file) the sign-in
is ``gcloud auth application-default login``: the flow people know, gcloud's
OAuth client, its quota-project handling. Without gcloud, a loopback-redirect
installed-app flow runs here with the profile's ``oauth_client_file``.

Why hand-written rather than google-auth-oauthlib: google-auth has no
user-consent flow, and google-auth-oauthlib would add oauthlib and
requests-oauthlib for ~60 lines of work, refuses plain-http token endpoints
(our tests' fakes) unless an environment switch is set, and its local server
has no overall deadline. This flow uses PKCE (S256), a random ``state`` checked
in constant time, binds 127.0.0.1 only, and bounds every wait.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import os
import secrets
import subprocess
import time
import urllib.parse
import webbrowser
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tokend.core import atomicfile
from tokend.core.errors import SourceError, UsageError
from tokend.sources.base import LoginContext
from tokend.sources.google.adc import AdcFile

if TYPE_CHECKING:
    import requests

GCLOUD_DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: Scopes gcloud asks for besides the profile's, so the ADC file identifies its user.
IDENTITY_SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email")
TOKEN_EXCHANGE_TIMEOUT = 30.0


def login(
    ctx: LoginContext,
    *,
    adc: AdcFile,
    scopes: tuple[str, ...],
    quota_project: str | None,
    client_file: str | None,
    gcloud: str | None,
    open_url: Callable[[str], object] | None,
    session_factory: Callable[[], requests.Session],
    environ: Mapping[str, str],
) -> None:
    _check_target(ctx.profile, adc)
    if gcloud and adc.is_well_known:
        _gcloud_login(ctx, gcloud, scopes, client_file, environ)
        return
    if not client_file:
        why = "gcloud is not on PATH" if not gcloud else f"{adc.path} is not gcloud's ADC file"
        raise UsageError(
            f"{why}: install the Google Cloud CLI, or set oauth_client_file in profiles.{ctx.profile} "
            "to an OAuth client JSON (application type Desktop) for tokend's own sign-in",
            profile=ctx.profile,
        )
    client = _read_client(ctx.profile, client_file)
    refresh_token = _loopback_flow(ctx, client, (*IDENTITY_SCOPES, *scopes), open_url, session_factory)
    info: dict[str, Any] = {
        "type": "authorized_user",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "refresh_token": refresh_token,
        "universe_domain": "googleapis.com",
    }
    if quota_project:
        info["quota_project_id"] = quota_project
    write_private_json(adc.path, info)
    ctx.echo(f"{ctx.profile}: credentials saved to {adc.path}")


def logout(profile: str, adc: AdcFile) -> None:
    """Delete the ``authorized_user`` file a sign-in wrote (never a key or a config of another kind)."""
    _check_target(profile, adc)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(adc.path)


def _check_target(profile: str, adc: AdcFile) -> None:
    """Refuse to replace a credentials file that is not a person's sign-in."""
    try:
        with open(adc.path, encoding="utf-8") as f:
            kind = json.load(f).get("type")
    except (OSError, ValueError, AttributeError):
        return  # absent or unreadable: signing in writes a good one
    if kind != "authorized_user":
        raise UsageError(
            f"{adc.path} holds {kind} credentials, which need no sign-in "
            "(point credentials_file elsewhere to sign in as a person)",
            profile=profile,
        )


# -- gcloud ------------------------------------------------------------------------


def _gcloud_login(
    ctx: LoginContext,
    gcloud: str,
    scopes: tuple[str, ...],
    client_file: str | None,
    environ: Mapping[str, str],
) -> None:
    argv = [gcloud, "auth", "application-default", "login"]
    if not ctx.open_browser:
        argv.append("--no-launch-browser")  # print the URL, read the code back: works over SSH
    if tuple(scopes) != GCLOUD_DEFAULT_SCOPES:
        argv.append("--scopes=" + ",".join(dict.fromkeys((*IDENTITY_SCOPES, *scopes))))
    if client_file:
        argv.append("--client-id-file=" + os.path.expanduser(client_file))
    ctx.echo(f"{ctx.profile}: running {' '.join(argv[1:])}")
    try:
        # The person talks to gcloud directly: stdin, stdout and stderr are the terminal's.
        proc = subprocess.run(argv, env=dict(environ), timeout=ctx.timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SourceError(
            f"gcloud sign-in did not finish within {ctx.timeout:g}s", profile=ctx.profile
        ) from None
    except OSError as e:
        raise SourceError(f"cannot run {gcloud}: {e.strerror}", profile=ctx.profile) from None
    if proc.returncode != 0:
        raise SourceError(
            f"gcloud auth application-default login failed (exit status {proc.returncode})",
            profile=ctx.profile,
            retryable=False,
        )


# -- the loopback flow ---------------------------------------------------------------


def _read_client(profile: str, path: str) -> dict[str, str]:
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"oauth_client_file {path}: cannot read it ({e})", profile=profile) from None
    client = doc.get("installed") if isinstance(doc, dict) else None
    if not isinstance(client, dict):
        raise UsageError(
            f'oauth_client_file {path}: expected a Desktop-app client JSON (an "installed" object)',
            profile=profile,
        )
    missing = [k for k in ("client_id", "client_secret", "auth_uri", "token_uri") if not client.get(k)]
    if missing:
        raise UsageError(f"oauth_client_file {path}: lacks {', '.join(missing)}", profile=profile)
    return {k: str(v) for k, v in client.items() if isinstance(v, str)}


class _Callback(http.server.BaseHTTPRequestHandler):
    """Answers the browser's redirect; the server keeps the first one carrying a result."""

    server: _LoopbackServer

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        params = {k: v[0] for k, v in query.items() if v}
        if "code" in params or "error" in params:
            if self.server.result is None:
                self.server.result = params
            body = b"<html><body>Signed in. You can close this tab.</body></html>"
            status = 200
        else:
            body, status = b"not found", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code
        pass


class _LoopbackServer(http.server.HTTPServer):
    result: dict[str, str] | None = None


def _loopback_flow(
    ctx: LoginContext,
    client: Mapping[str, str],
    scopes: tuple[str, ...],
    open_url: Callable[[str], object] | None,
    session_factory: Callable[[], requests.Session],
) -> str:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(24)
    with _LoopbackServer(("127.0.0.1", 0), _Callback) as server:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
        url = (
            client["auth_uri"]
            + "?"
            + urllib.parse.urlencode(
                {
                    "response_type": "code",
                    "client_id": client["client_id"],
                    "redirect_uri": redirect_uri,
                    "scope": " ".join(dict.fromkeys(scopes)),
                    "state": state,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "access_type": "offline",
                    "prompt": "consent",
                }
            )
        )
        ctx.echo(f"{ctx.profile}: sign in with Google in a browser on this machine:\n\n    {url}\n")
        if ctx.open_browser:
            (open_url or webbrowser.open)(url)
        deadline = time.monotonic() + ctx.timeout
        while server.result is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SourceError(f"no sign-in within {ctx.timeout:g}s", profile=ctx.profile, retryable=False)
            server.timeout = min(left, 1.0)
            server.handle_request()
        result = server.result
    if "error" in result:
        raise SourceError(f"sign-in refused: {result['error'][:100]}", profile=ctx.profile, retryable=False)
    if not hmac.compare_digest(result.get("state", ""), state):
        raise SourceError("sign-in answer carried the wrong state; start again", profile=ctx.profile)
    return _exchange(ctx.profile, client, result["code"], redirect_uri, verifier, session_factory)


def _exchange(
    profile: str,
    client: Mapping[str, str],
    code: str,
    redirect_uri: str,
    verifier: str,
    session_factory: Callable[[], requests.Session],
) -> str:
    import requests

    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    session = session_factory()
    try:
        response = session.post(client["token_uri"], data=data, timeout=TOKEN_EXCHANGE_TIMEOUT)
        doc = response.json()
    except requests.RequestException as e:
        raise SourceError(f"cannot reach the token endpoint: {type(e).__name__}", profile=profile) from None
    except ValueError:
        raise SourceError("the token endpoint answered something other than JSON", profile=profile) from None
    finally:
        session.close()
    if response.status_code != 200 or not isinstance(doc, dict):
        error = doc.get("error") if isinstance(doc, dict) else None
        raise SourceError(
            f"the token endpoint refused the sign-in ({error})", profile=profile, retryable=False
        )
    token = doc.get("refresh_token")
    if not isinstance(token, str) or not token:
        raise SourceError("the token endpoint returned no refresh token", profile=profile)
    return token


def write_private_json(path: str, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` atomically, mode 0600, creating the directory 0700."""
    atomicfile.write_text(path, json.dumps(doc, indent=2) + "\n", mode=0o600, follow_symlinks=False)
