"""Provider answers the real oidc-provider cannot be made to give on cue: ``slow_down`` then
``expired_token`` while the device code should still be good, and a discovery document that points
the token endpoint at plain http. A fake provider at the HTTP boundary, which answers only the exact
client and device code it issued."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.fakes.server import LocalHTTPServer
from tokend.core import config
from tokend.core.errors import SourceError, UsageError
from tokend.sources.base import FetchRequest, LoginContext
from tokend.sources.oauth2 import OAuth2Source

DEVICE_CODE = "dc-exact-0001"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class _Provider(BaseHTTPRequestHandler):
    """Discovery, device authorization and a token endpoint that says slow_down, then expired_token."""

    polls: ClassVar[list[float]] = []
    token_endpoint: ClassVar[str] = ""

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path != "/.well-known/openid-configuration":
            return self._json(404, {})
        self._json(200, {
            "issuer": issuer,
            "token_endpoint": self.token_endpoint or f"{issuer}/token",
            "device_authorization_endpoint": f"{issuer}/device",
        })  # fmt: skip

    def do_POST(self) -> None:
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        if form.get("client_id") != "cli":
            return self._json(401, {"error": "invalid_client"})
        if self.path == "/device":
            return self._json(200, {
                "device_code": DEVICE_CODE, "user_code": "ABCD-EFGH", "expires_in": 600, "interval": 1,
                "verification_uri": "https://idp.example.test/device",
            })  # fmt: skip
        if self.path != "/token" or form.get("grant_type") != GRANT or form.get("device_code") != DEVICE_CODE:
            return self._json(400, {"error": "invalid_grant"})
        self.polls.append(time.monotonic())
        self._json(400, {"error": "slow_down" if len(self.polls) == 1 else "expired_token"})

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def provider() -> Iterator[LocalHTTPServer]:
    _Provider.polls = []
    _Provider.token_endpoint = ""
    with LocalHTTPServer(_Provider) as server:
        yield server


def source(tmp_path: Path, issuer: str) -> OAuth2Source:
    text = f'[profiles.gw]\nsource = "oauth2"\nissuer = "{issuer}"\nclient_id = "cli"\n'
    text += 'grant = "device_code"\n'
    return OAuth2Source("gw", config.parse(text, tmp_path / "c.toml").profiles["gw"].options, clock=time.time)


@pytest.mark.timeout(60)
def test_slow_down_then_expired_token_from_the_provider(provider: LocalHTTPServer, tmp_path: Path) -> None:
    said: list[str] = []
    ctx = LoginContext(profile="gw", echo=said.append, open_browser=False, timeout=60, profiles={})
    with pytest.raises(UsageError) as e:
        source(tmp_path, provider.url).login(ctx)
    assert (e.value.profile, e.value.message) == (
        "gw", "the sign-in code expired before it was approved; run: tokend login gw"
    )
    assert said == ["To sign in for gw, open https://idp.example.test/device and enter the code ABCD-EFGH"]
    first, second = _Provider.polls
    assert second - first >= 5.5, "slow_down adds five seconds to the interval (RFC 8628 §3.5)"


def test_discovery_pointing_the_token_endpoint_at_plain_http(
    provider: LocalHTTPServer, tmp_path: Path
) -> None:
    _Provider.token_endpoint = "http://idp.example.test/token"
    with pytest.raises(SourceError) as e:
        source(tmp_path, provider.url).fetch(FetchRequest("gw", 10))
    assert (e.value.profile, e.value.message) == (
        "gw", "discovery gave an unusable token_endpoint: 'http://idp.example.test/token'"
    )
    assert not e.value.retryable and _Provider.polls == []
