"""A fake AWS IAM Identity Center: the SSO portal's GetRoleCredentials and the sso-oidc device flow.

moto has neither. One local HTTP server answers both APIs (route botocore to
it with ``AWS_ENDPOINT_URL_SSO`` and ``AWS_ENDPOINT_URL_SSO_OIDC``); it counts
every call so tests can tell how many sign-ins happened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalHTTPServer

START_URL = "https://tokend-test.awsapps.com/start"
SSO_REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = "TokendDeveloper"


class FakeSso:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.valid_tokens: set[str] = set()
        #: CreateToken answers "authorization pending" this many times per device code.
        self.pending_polls = 1
        self.role_lifetime = 3600.0
        self.issued_keys: list[str] = []
        self._devices: dict[str, int] = {}
        self._refresh: dict[str, str] = {}
        self.url = ""

    # -- what tests set up ---------------------------------------------------------------

    def session_token(self) -> str:
        """A new access token the portal accepts."""
        token = "sso-access-" + secrets.token_hex(12)
        with self.lock:
            self.valid_tokens.add(token)
        return token

    def write_cache(
        self, home: Path, *, session_name: str | None, access_token: str, expires_in: float
    ) -> Path:
        """An AWS CLI token cache entry (``~/.aws/sso/cache/<sha1>.json``)."""
        directory = home / ".aws" / "sso" / "cache"
        directory.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha1((session_name or START_URL).encode()).hexdigest()
        path = directory / f"{key}.json"
        doc = {
            "startUrl": START_URL,
            "region": SSO_REGION,
            "accessToken": access_token,
            "expiresAt": _stamp(time.time() + expires_in),
        }
        path.write_text(json.dumps(doc))
        path.chmod(0o600)
        return path

    # -- the APIs ---------------------------------------------------------------------------

    def role_credentials(self, token: str | None, role: str, account: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls["GetRoleCredentials"] += 1
            if token not in self.valid_tokens:
                return 401, {
                    "__type": "UnauthorizedException",
                    "message": "Session token not found or invalid",
                }
            key = "ASIASSO" + secrets.token_hex(6).upper()
            self.issued_keys.append(key)
        expires = int((time.time() + self.role_lifetime) * 1000)
        return 200, {
            "roleCredentials": {
                "accessKeyId": key,
                "secretAccessKey": secrets.token_urlsafe(30),
                "sessionToken": "sso-session-" + secrets.token_urlsafe(40),
                "expiration": expires,
            }
        }

    def oidc(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if path == "/client/register":
                self.calls["RegisterClient"] += 1
                return 200, {
                    "clientId": "client-" + secrets.token_hex(6),
                    "clientSecret": "client-secret-" + secrets.token_hex(12),
                    "clientIdIssuedAt": int(time.time()),
                    "clientSecretExpiresAt": int(time.time() + 90 * 86400),
                }
            if path == "/device_authorization":
                self.calls["StartDeviceAuthorization"] += 1
                device = "device-" + secrets.token_hex(8)
                self._devices[device] = self.pending_polls
                code = secrets.token_hex(2).upper() + "-" + secrets.token_hex(2).upper()
                return 200, {
                    "deviceCode": device,
                    "userCode": code,
                    "verificationUri": "https://device.sso.us-east-1.amazonaws.com/",
                    "verificationUriComplete": f"https://device.sso.us-east-1.amazonaws.com/?user_code={code}",
                    "expiresIn": 600,
                    "interval": 1,
                }
            if path == "/token":
                self.calls["CreateToken"] += 1
                if body.get("grantType") == "refresh_token":
                    if body.get("refreshToken") not in self._refresh:
                        return 400, {"__type": "InvalidGrantException", "error": "invalid_grant"}
                else:
                    left = self._devices.get(str(body.get("deviceCode")))
                    if left is None:
                        return 400, {"__type": "ExpiredTokenException", "error": "expired_token"}
                    if left > 0:
                        self._devices[str(body["deviceCode"])] = left - 1
                        return 400, {
                            "__type": "AuthorizationPendingException",
                            "error": "authorization_pending",
                        }
                    del self._devices[str(body["deviceCode"])]
                token = "sso-access-" + secrets.token_hex(12)
                refresh = "sso-refresh-" + secrets.token_hex(12)
                self.valid_tokens.add(token)
                self._refresh[refresh] = token
                return 200, {
                    "accessToken": token,
                    "tokenType": "Bearer",
                    "expiresIn": 8 * 3600,
                    "refreshToken": refresh,
                }
        return 404, {"__type": "ResourceNotFoundException", "message": path}


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler(fake: FakeSso) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status >= 400:
                self.send_header("x-amzn-ErrorType", str(doc.get("__type", "")))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/federation/credentials":
                self._send(404, {"__type": "ResourceNotFoundException", "message": url.path})
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, doc = fake.role_credentials(
                self.headers.get("x-amz-sso_bearer_token"),
                query.get("role_name", ""),
                query.get("account_id", ""),
            )
            self._send(status, doc)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            self._send(*fake.oidc(urlsplit(self.path).path, body))

    return Handler


@contextlib.contextmanager
def fake_sso() -> Iterator[FakeSso]:
    fake = FakeSso()
    with LocalHTTPServer(_handler(fake), name="fake-sso") as server:
        fake.url = server.url
        yield fake


def sso_config(session_name: str = "corp", profiles: tuple[str, ...] = ("dev",)) -> str:
    """AWS config text: an ``[sso-session]`` and profiles using it."""
    text = (
        f"[sso-session {session_name}]\n"
        f"sso_start_url = {START_URL}\n"
        f"sso_region = {SSO_REGION}\n"
        "sso_registration_scopes = sso:account:access\n"
    )
    for name in profiles:
        text += (
            f"\n[profile {name}]\n"
            f"sso_session = {session_name}\n"
            f"sso_account_id = {ACCOUNT}\n"
            f"sso_role_name = {ROLE}\n"
            "region = us-east-1\n"
        )
    return text


def legacy_sso_config(profile: str = "legacy") -> str:
    return (
        f"[profile {profile}]\n"
        f"sso_start_url = {START_URL}\n"
        f"sso_region = {SSO_REGION}\n"
        f"sso_account_id = {ACCOUNT}\n"
        f"sso_role_name = {ROLE}\n"
        "region = us-east-1\n"
    )
