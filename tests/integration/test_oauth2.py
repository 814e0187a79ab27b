"""``source = "oauth2"`` through real ``tokend`` processes against a real OpenID provider (oidc-provider)."""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fakes.oidc_provider import RESOURCE, Provider, confidential, oidc_provider

from .conftest import Sandbox

SECRET = "s3cret-oauth2-basic-0001"
POST_SECRET = "s3cret-oauth2-post-0002"


def rsa_key() -> tuple[str, dict[str, object]]:
    """A new RSA private key (PEM) and its public JWK."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc.jwk import RSAKey

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = RSAKey.import_key(pem).as_dict(private=False)
    return pem, {**public, "kid": "k1", "use": "sig"}


KEY_PEM, KEY_JWK = rsa_key()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    keyed = {
        "client_id": "keyed",
        "grant_types": ["client_credentials"],
        "redirect_uris": [],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "RS256",
        "jwks": {"keys": [KEY_JWK]},
        "scope": "ai.invoke",
    }
    clients = [confidential("svc", SECRET), confidential("poster", POST_SECRET, "client_secret_post"), keyed]
    with oidc_provider(clients) as p:
        yield p


def claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def profiles(issuer: str) -> str:
    return f"""
        [profiles.gateway]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "svc"
        client_secret = "env:GATEWAY_SECRET"
        scopes = ["ai.invoke"]
        resource = "{RESOURCE}"

        [profiles.poster]
        source = "oauth2"
        token_endpoint = "{issuer}/token"
        client_id = "poster"
        client_secret = "file:{{secret_file}}"
        client_auth = "client_secret_post"

        [profiles.wrong]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "svc"
        client_secret = "env:WRONG_SECRET"
        """


@pytest.mark.timeout(120)
def test_client_credentials_through_the_daemon(sandbox: Sandbox, provider: Provider) -> None:
    secret_file = sandbox.root / "poster.secret"
    secret_file.write_text(POST_SECRET + "\n")
    sandbox.write_config(profiles(provider.issuer).replace("{secret_file}", str(secret_file)))
    env = sandbox.env(GATEWAY_SECRET=SECRET, WRONG_SECRET=SECRET + "x")
    daemon = sandbox.start_daemon(env=env)

    r = sandbox.print_("gateway", env=env)
    assert r.status == 0, r
    token = r.out.strip()
    got = claims(token)
    # A JWT access token for the gateway, issued to the client whose secret was sent.
    assert (got["aud"], got["client_id"], got["scope"]) == (RESOURCE, "svc", "ai.invoke")
    again = sandbox.print_("gateway", env=env)
    assert again.out.strip() == token, "a cached token is served until it nears expiry"
    status = sandbox.profile_status("gateway")
    assert status["fetches"] == 1, status

    # client_secret_post, endpoints given without discovery: an opaque token, expiry from expires_in.
    r = sandbox.tokend("get", "--format", "json", "poster", env=env)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert doc["kind"] == "bearer" and "." not in doc["token"]
    left = time.mktime(time.strptime(doc["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
    assert 300 < left <= 601, doc

    # The provider refuses a wrong secret: one line naming the profile and the client, not retried.
    r = sandbox.print_("wrong", env=env)
    assert r.status == 1 and r.out == "", r
    assert r.err_lines == [
        "tokend: wrong: the provider refused client 'svc': invalid_client (client authentication failed)"
    ], r
    daemon.stop()
    log = daemon.log_text()
    assert SECRET not in log and POST_SECRET not in log and token not in log


class _Garbage(http.server.BaseHTTPRequestHandler):
    """A server that answers every discovery request 200 with an HTML page (a captive portal, a proxy)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body>Please sign in to the Wi-Fi</body></html>")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def garbage_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_bad_discovery_and_insecure_issuers(
    sandbox: Sandbox, provider: Provider, garbage_server: str
) -> None:
    sandbox.write_config(
        f"""
        [profiles.down]
        source = "oauth2"
        issuer = "http://127.0.0.1:{closed_port()}"
        client_id = "svc"
        client_secret = "env:GATEWAY_SECRET"

        [profiles.missing]
        source = "oauth2"
        issuer = "{provider.issuer}/jwks"
        client_id = "svc"
        client_secret = "env:GATEWAY_SECRET"

        [profiles.garbage]
        source = "oauth2"
        issuer = "{garbage_server}"
        client_id = "svc"
        client_secret = "env:GATEWAY_SECRET"
        """
    )
    env = sandbox.env(GATEWAY_SECRET=SECRET)
    r = sandbox.tokend("get", "--no-daemon", "down", env=env)
    assert r.status == 1 and r.out == "", r
    assert "OpenID discovery at http://127.0.0.1:" in r.err and "ConnectionError" in r.err, r
    r = sandbox.tokend("get", "--no-daemon", "missing", env=env)
    assert r.status == 1 and r.out == "", r
    assert r.err_lines == [
        f"tokend: missing: OpenID discovery at {provider.issuer}/jwks/.well-known/openid-configuration "
        "answered HTTP 404"
    ], r
    r = sandbox.tokend("get", "--no-daemon", "garbage", env=env)
    assert r.status == 1 and r.out == "", r
    assert r.err_lines == [
        f"tokend: garbage: OpenID discovery at {garbage_server}/.well-known/openid-configuration "
        "did not answer a JSON object"
    ], r

    sandbox.write_config(
        """
        [profiles.clear]
        source = "oauth2"
        issuer = "http://login.example.com/realms/ai"
        client_id = "svc"
        client_secret = "env:GATEWAY_SECRET"
        """
    )
    r = sandbox.tokend("get", "--no-daemon", "clear", env=env)
    assert r.status == 2, r
    assert "profiles.clear.issuer: plain http only to a loopback address" in r.err, r


@pytest.mark.timeout(120)
def test_private_key_jwt_client(sandbox: Sandbox, provider: Provider) -> None:
    key_file = sandbox.root / "client.pem"
    key_file.write_text(KEY_PEM)
    other_pem, _ = rsa_key()
    other_file = sandbox.root / "other.pem"
    other_file.write_text(other_pem)
    profile = """
        [profiles.{name}]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "keyed"
        client_auth = "private_key_jwt"
        client_key = "file:{key}"
        client_key_id = "k1"
        scopes = ["ai.invoke"]
        resource = "{resource}"
        """
    sandbox.write_config(
        profile.format(name="keyed", issuer=provider.issuer, key=key_file, resource=RESOURCE)
        + profile.format(name="forged", issuer=provider.issuer, key=other_file, resource=RESOURCE)
    )
    r = sandbox.tokend("get", "--no-daemon", "keyed")
    assert (r.status, r.err) == (0, ""), r
    assert claims(r.out.strip())["client_id"] == "keyed"
    # Signed with a key the client did not register: refused.
    r = sandbox.tokend("get", "--no-daemon", "forged")
    assert r.status == 1 and "invalid_client" in r.err, r
