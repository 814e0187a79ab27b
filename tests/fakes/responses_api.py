"""A fake OpenAI Responses API (the wire API the Codex CLI speaks) that insists on a bearer token.

``GET /v1/models`` and ``POST /v1/responses`` (server-sent events: one
assistant message, then ``response.completed``) answer only requests whose
``Authorization: Bearer TOKEN`` passes ``accept(token)`` (and, with
``jwt=JwtCheck(issuer, audience)``, is a JWT access token that provider signed
for that audience, as a gateway checks); anything else gets a 401. Every
request is recorded with the token it carried and the status it got.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import LocalHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    token: str | None
    status: int


class JwtCheck:
    """Accepts a JWT access token only when its signature checks against ``issuer``'s published keys
    (the ``jwks_uri`` of its OpenID discovery document, fetched once), its ``iss`` is ``issuer``,
    its ``aud`` names ``audience`` and it has not expired. ``refused`` keeps why the others failed."""

    ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")

    def __init__(self, issuer: str, audience: str) -> None:
        import requests
        from joserfc.jwk import KeySet

        self.issuer = issuer
        self.audience = audience
        doc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=30).json()
        self.keys = KeySet.import_key_set(requests.get(doc["jwks_uri"], timeout=30).json())
        self.refused: list[str] = []

    def __call__(self, token: str) -> bool:
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            decoded = jwt.decode(token, self.keys, algorithms=list(self.ALGORITHMS))
        except (JoseError, ValueError) as e:
            self.refused.append(f"signature: {type(e).__name__}")
            return False
        claims = decoded.claims
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        exp = claims.get("exp")
        if claims.get("iss") != self.issuer:
            self.refused.append(f"iss {claims.get('iss')!r}")
        elif self.audience not in audiences:
            self.refused.append(f"aud {aud!r}")
        elif not isinstance(exp, (int, float)) or exp <= time.time():
            self.refused.append(f"exp {exp!r}")
        else:
            return True
        return False


class FakeResponsesApi:
    def __init__(
        self,
        accept: Callable[[str], bool] = lambda token: True,
        reply: str = "pong from the fake",
        *,
        jwt: JwtCheck | None = None,
    ) -> None:
        self.accept = accept
        self.jwt = jwt
        self.reply = reply
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    def __enter__(self) -> FakeResponsesApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = LocalHTTPServer(Handler, name="fake-responses", poll_interval=0.05).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self._server.url}/v1"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def calls(self, path: str = "/v1/responses") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakeResponsesApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else None

    def _authorized(self, path: str) -> str | None:
        token = self._token()
        valid = token is not None and (self.fake.jwt is None or self.fake.jwt(token))
        if token is not None and valid and self.fake.accept(token):
            return token
        self.fake.record(Seen(self.command, path, token, 401))
        body = json.dumps({"error": {"message": "invalid bearer token", "type": "invalid_request_error"}})
        self._send(401, body.encode(), "application/json")
        return None

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        token = self._authorized(path)
        if token is None:
            return
        self.fake.record(Seen("GET", path, token, 200))
        self._send(200, json.dumps({"data": [], "models": []}).encode(), "application/json")

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = self._authorized(path)
        if token is None:
            return
        if path != "/v1/responses":
            self.fake.record(Seen("POST", path, token, 404))
            self._send(404, b"{}", "application/json")
            return
        self.fake.record(Seen("POST", path, token, 200))
        message = {
            "type": "message",
            "role": "assistant",
            "id": "msg_fake",
            "content": [{"type": "output_text", "text": self.fake.reply, "annotations": []}],
        }
        events = [
            {"type": "response.created", "response": {"id": "resp_fake"}},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {
                "type": "response.completed",
                "response": {
                    "id": "resp_fake",
                    "usage": {
                        "input_tokens": 1,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": 1,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 2,
                    },
                },
            },
        ]
        body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
        self._send(200, body, "text/event-stream")
