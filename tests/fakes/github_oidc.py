"""A fake of GitHub Actions' ID-token endpoint (``$ACTIONS_ID_TOKEN_REQUEST_URL``).

``GET /_apis/token?api-version=2.0&audience=AUD`` with ``Authorization: bearer
REQUEST_TOKEN`` answers ``{"count": 1, "value": JWT}``; the JWT's claims look
like GitHub's (``iss``, ``sub``, ``aud``, ``repository``…). Every request is
recorded; ``status`` makes it answer an error instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalHTTPServer

ISSUER = "https://token.actions.githubusercontent.com"
REPOSITORY = "acme/deploy"


def _b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


@dataclass
class FakeGithubOidc:
    request_token: str = field(default_factory=lambda: "ghs_req" + secrets.token_hex(16))
    url: str = ""
    status: int = 200
    #: When set, every request gets this token (for an IdP that trusts known tokens only).
    fixed_token: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self) -> dict[str, str]:
        """The variables a job with ``permissions: id-token: write`` has."""
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/_apis/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def jwt(self, audience: str) -> str:
        if self.fixed_token is not None:
            with self.lock:
                self.issued.append(self.fixed_token)
            return self.fixed_token
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
            "aud": audience,
            "repository": REPOSITORY,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
        }
        token = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{secrets.token_urlsafe(32)}"
        with self.lock:
            self.issued.append(token)
        return token


def _handler(fake: FakeGithubOidc) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            auth = self.headers.get("Authorization", "")
            with fake.lock:
                fake.requests.append({"path": url.path, "authorization": auth, **query})
            if fake.status != 200:
                self._send(fake.status, {"message": "nope"})
            elif url.path != "/_apis/token" or query.get("api-version") != "2.0":
                self._send(404, {"message": "not found"})
            elif auth != f"bearer {fake.request_token}":
                self._send(401, {"message": "bad request token"})
            else:
                self._send(200, {"count": 1, "value": fake.jwt(query.get("audience", ""))})

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def fake_github_oidc() -> Iterator[FakeGithubOidc]:
    fake = FakeGithubOidc()
    with LocalHTTPServer(_handler(fake), name="fake-github-oidc", poll_interval=0.05) as server:
        fake.url = server.url
        yield fake
