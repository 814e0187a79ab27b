"""A fake OpenAI Responses API (the wire API the Codex CLI speaks) that insists on a bearer token.

``GET /v1/models`` and ``POST /v1/responses`` (server-sent events: one
assistant message, then ``response.completed``) answer only requests whose
``Authorization: Bearer TOKEN`` passes ``accept(token)`` (and, with
``jwt=JwtCheck(issuer, audience)``, is a JWT access token that provider signed
for that audience, as a gateway checks); anything else gets a 401. Every
request is recorded with the token it carried and the status it got.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.model_api import ApiHandler, RecordingApi, Seen


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


def _events(reply: str) -> list[dict[str, Any]]:
    """One assistant message, then ``response.completed``."""
    message = {
        "type": "message",
        "role": "assistant",
        "id": "msg_fake",
        "content": [{"type": "output_text", "text": reply, "annotations": []}],
    }
    usage = {
        "input_tokens": 1,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 2,
    }
    return [
        {"type": "response.created", "response": {"id": "resp_fake"}},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": {"id": "resp_fake", "usage": usage}},
    ]


class _Handler(ApiHandler):
    fake: FakeResponsesApi

    def _authorized(self) -> str | None:
        token = self.bearer()
        valid = token is not None and (self.fake.jwt is None or self.fake.jwt(token))
        if token is not None and valid and self.fake.accept(token):
            return token
        self.fake.record(self.command, self.route, token, 401)
        body = json.dumps({"error": {"message": "invalid bearer token", "type": "invalid_request_error"}})
        self.send(401, body.encode())
        return None

    def do_GET(self) -> None:
        token = self._authorized()
        if token is not None:
            self.fake.record("GET", self.route, token, 200)
            self.send(200, json.dumps({"data": [], "models": []}).encode())

    def do_POST(self) -> None:
        self.body()
        token = self._authorized()
        if token is None:
            return
        if self.route != "/v1/responses":
            self.fake.record("POST", self.route, token, 404)
            self.send(404, b"{}")
            return
        self.fake.record("POST", self.route, token, 200)
        self.send_events(_events(self.fake.reply))


class FakeResponsesApi(RecordingApi):
    Handler = _Handler
    name = "fake-responses"

    def __init__(
        self,
        accept: Callable[[str], bool] = lambda token: True,
        reply: str = "pong from the fake",
        *,
        jwt: JwtCheck | None = None,
    ) -> None:
        super().__init__(reply)
        self.accept = accept
        self.jwt = jwt

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def calls(self, path: str | None = "/v1/responses") -> list[Seen]:
        return super().calls(path)
