"""A fake of Google's auth endpoints on 127.0.0.1, so the real google-auth code runs in tests.

One ``FakeGoogle`` serves, on an ephemeral port in a thread:

- ``POST /token`` (oauth2.googleapis.com): JWT-bearer grants (the service
  account's JWT signature is verified with the public half of a key the test
  generated), ``refresh_token`` grants (revocable: ``invalid_grant``) and
  ``authorization_code`` grants with PKCE;
- ``POST /v1/token`` (sts.googleapis.com): token exchange for external accounts;
- ``POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`` and
  ``:generateIdToken`` (iamcredentials.googleapis.com), bearer-checked;
- the GCE metadata server (``/`` and ``/computeMetadata/v1/...``), which
  answers only requests with ``Metadata-Flavor: Google``;
- ``GET /o/oauth2/auth``: a consent screen that approves at once (redirects
  back with a code);
- ``GET /subject-token``: a url-sourced external-account subject token.

``hang("/computeMetadata", "/")`` makes paths accept and never answer.
Every token it issues is recorded in ``issued`` so tests can assert what a
consumer was handed. ``RoutedSession`` sends Google's fixed hosts here (the
test-only transport: google-auth ignores ``token_uri`` for authorized_user
files and reads the metadata host once at import).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.server import LocalHTTPServer

EXPIRES_IN = 3600  # google-auth refreshes 3m45s before expiry: stay well above
GOOGLE_HOSTS = frozenset(
    {
        "oauth2.googleapis.com",
        "sts.googleapis.com",
        "iamcredentials.googleapis.com",
        "www.googleapis.com",
        "accounts.google.com",
        "metadata.google.internal",
        "169.254.169.254",
    }
)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@functools.lru_cache(maxsize=8)
def rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit key; ``n`` picks one of a few cached ones (generation costs ~50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_jwt(key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str = "fake") -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url(signature)}"


def jwt_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(unb64url(token.split(".")[1]))
    return claims


@dataclass
class Issued:
    kind: str  # "access" or "id"
    token: str
    grant: str  # how it was obtained: jwt-bearer, refresh_token, sts, impersonation, metadata, …
    principal: str
    expires_in: int
    detail: dict[str, Any] = field(default_factory=dict)


class FakeGoogle:
    """The fake endpoints, started on ``__enter__`` (or ``start``), stopped by ``stop``."""

    def __init__(self, *, expires_in: int = EXPIRES_IN) -> None:
        self.expires_in = expires_in
        self.signing_key = rsa_key(7)  # signs the ID tokens this fake issues
        self.service_accounts: dict[str, rsa.RSAPublicKey] = {}
        self.users: dict[str, dict[str, str]] = {}  # refresh token -> client and account
        self.revoked: set[str] = set()
        self.codes: dict[str, dict[str, str]] = {}
        self.issued: list[Issued] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.metadata_account = "vm-sa@proj.iam.gserviceaccount.com"
        self.impersonable: set[str] | None = None  # None: any target may be impersonated
        self._hang: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None
        self._port = 0

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(_Handler):
            google = fake

        self._server = LocalHTTPServer(Handler, name="fake-google", poll_interval=0.05).start()
        self._port = self._server.port
        return self

    def stop(self) -> None:
        self._stop.set()  # releases hanging handlers
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (after ``stop``, the port nothing listens on any more)."""
        assert self._port, "not started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` for GCE_METADATA_HOST / GCE_METADATA_IP."""
        return f"127.0.0.1:{self.port}"

    # -- what the test sets up --------------------------------------------------------

    def service_account(
        self, email: str = "sa@proj.iam.gserviceaccount.com", *, key: int = 0
    ) -> dict[str, Any]:
        """A ``service_account`` key file's contents whose public key this fake trusts."""
        private = rsa_key(key)
        self.service_accounts[email] = private.public_key()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": f"kid-{key}",
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }

    def authorized_user(
        self, account: str = "alice@example.com", *, quota_project: str | None = None
    ) -> dict[str, Any]:
        """An ``authorized_user`` ADC file's contents with a refresh token this fake honours."""
        refresh_token = "1//fake-refresh-" + secrets.token_urlsafe(12)
        client = {"client_id": "fake-client.apps.googleusercontent.com", "client_secret": "fake-secret"}
        self.users[refresh_token] = {**client, "account": account}
        info: dict[str, Any] = {"type": "authorized_user", "refresh_token": refresh_token, **client}
        if quota_project:
            info["quota_project_id"] = quota_project
        return info

    def oauth_client(self) -> dict[str, Any]:
        """A Desktop-app OAuth client JSON pointing at this fake."""
        return {
            "installed": {
                "client_id": "fake-desktop.apps.googleusercontent.com",
                "client_secret": "fake-desktop-secret",
                "auth_uri": self.url + "/o/oauth2/auth",
                "token_uri": self.token_uri,
                "redirect_uris": ["http://localhost"],
            }
        }

    def revoke(self, refresh_token: str) -> None:
        self.revoked.add(refresh_token)

    def hang(self, *paths: str) -> None:
        """Accept requests for these paths (exact, or prefixes ending in ``/``) and never answer."""
        self._hang.update(paths)

    # -- what the test asserts -----------------------------------------------------

    def tokens(self, kind: str | None = None, grant: str | None = None) -> list[str]:
        with self._lock:
            return [
                i.token
                for i in self.issued
                if (kind is None or i.kind == kind) and (grant is None or i.grant == grant)
            ]

    def grants(self) -> list[str]:
        with self._lock:
            return [i.grant for i in self.issued]

    def find(self, token: str) -> Issued | None:
        with self._lock:
            return next((i for i in self.issued if i.token == token), None)

    def paths(self) -> list[str]:
        with self._lock:
            return [p for _, p, _ in self.requests]

    # -- internals ----------------------------------------------------------------------

    def _hangs(self, path: str) -> bool:
        return any(path == h or (h.endswith("/") and path.startswith(h)) for h in self._hang)

    def _issue(self, kind: str, grant: str, principal: str, **detail: Any) -> Issued:
        expires_in = int(detail.pop("expires_in", self.expires_in))
        if kind == "id":
            now = int(time.time())
            token = sign_jwt(
                self.signing_key,
                {
                    "iss": "https://accounts.google.com",
                    "aud": detail.get("audience", ""),
                    "sub": principal,
                    "email": principal,
                    "iat": now,
                    "exp": now + expires_in,
                    "nonce": secrets.token_hex(4),
                },
            )
        else:
            token = f"ya29.fake-{grant}-{secrets.token_urlsafe(16)}"
        issued = Issued(kind, token, grant, principal, expires_in, detail)
        with self._lock:
            self.issued.append(issued)
        return issued

    def _bearer_principal(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        found = self.find(auth[7:].strip())
        return found.principal if found and found.kind == "access" else None

    def _verify_assertion(self, assertion: str) -> dict[str, Any]:
        """The claims of a service account's JWT, or ValueError naming what is wrong."""
        try:
            header_b64, payload_b64, sig_b64 = assertion.split(".")
            header = json.loads(unb64url(header_b64))
            claims: dict[str, Any] = json.loads(unb64url(payload_b64))
        except ValueError:
            raise ValueError("malformed JWT") from None
        if header.get("alg") != "RS256":
            raise ValueError("unsupported alg")
        public = self.service_accounts.get(str(claims.get("iss")))
        if public is None:
            raise ValueError("unknown service account")
        try:
            public.verify(
                unb64url(sig_b64), f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            raise ValueError("Invalid JWT Signature.") from None
        # google-auth always names Google's token endpoint as the audience.
        if claims.get("aud") not in (self.token_uri, "https://oauth2.googleapis.com/token"):
            raise ValueError(f"bad aud {claims.get('aud')!r}")
        now = time.time()
        if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)):
            raise ValueError("JWT not valid now")
        return claims


class _Handler(http.server.BaseHTTPRequestHandler):
    google: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------

    def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(doc, bytes) else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _oauth_error(self, status: int, error: str, description: str) -> None:
        self._send(status, {"error": error, "error_description": description})

    def _api_error(self, status: int, state: str, message: str) -> None:
        self._send(status, {"error": {"code": status, "message": message, "status": state}})

    def _begin(self) -> tuple[str, dict[str, str], dict[str, str]] | None:
        split = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.google._lock:
            self.google.requests.append((self.command, split.path, headers))
        if self.google._hangs(split.path):
            self.google._stop.wait(120)
            self.close_connection = True
            return None
        return split.path, query, headers

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # -- GET ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        begun = self._begin()
        if begun is None:
            return
        path, query, headers = begun
        g = self.google
        if path == "/" or path.startswith("/computeMetadata/"):
            self._metadata(path, query, headers)
        elif path == "/o/oauth2/auth":
            code = "fake-code-" + secrets.token_urlsafe(8)
            g.codes[code] = {
                "client_id": query.get("client_id", ""),
                "challenge": query.get("code_challenge", ""),
                "redirect_uri": query.get("redirect_uri", ""),
                "scope": query.get("scope", ""),
            }
            target = (
                query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})
            )
            self._send(302, b"", {"Location": target})
        elif path == "/subject-token":
            self._send(200, {"id_token": "subject-from-url"})
        else:
            self._send(404, {"error": "not_found"})

    def _metadata(self, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        g = self.google
        flavor = {"Metadata-Flavor": "Google"}
        if headers.get("metadata-flavor") != "Google":
            self._send(403, b"Missing Metadata-Flavor:Google header.", flavor)
            return
        base = "/computeMetadata/v1/instance/service-accounts/default"
        if path == "/":
            self._send(200, b"computeMetadata/\n", flavor)
        elif path == base + "/":
            doc = {"email": g.metadata_account, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
            self._send(200, doc, flavor)
        elif path == base + "/token":
            scopes = query.get("scopes", "").split(",") if query.get("scopes") else []
            issued = g._issue("access", "metadata", g.metadata_account, scopes=scopes)
            self._send(
                200,
                {"access_token": issued.token, "expires_in": issued.expires_in, "token_type": "Bearer"},
                flavor,
            )
        elif path == base + "/identity":
            issued = g._issue("id", "metadata", g.metadata_account, audience=query.get("audience", ""))
            self._send(200, issued.token.encode(), flavor)
        else:
            self._send(404, b"not found", flavor)

    # -- POST --------------------------------------------------------------------------

    def do_POST(self) -> None:
        begun = self._begin()
        body = self._body() if begun is not None else b""
        if begun is None:
            return
        path, _, headers = begun
        if path in ("/token", "/oauth2/v4/token", "/o/oauth2/token"):
            self._token(dict(urllib.parse.parse_qsl(body.decode())), headers)
        elif path == "/v1/token":
            self._sts(dict(urllib.parse.parse_qsl(body.decode())))
        elif path.startswith("/v1/projects/-/serviceAccounts/"):
            self._iam(path, json.loads(body or b"{}"), headers)
        else:
            self._send(404, {"error": "not_found"})

    def _token(self, form: dict[str, str], headers: dict[str, str]) -> None:
        g = self.google
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            try:
                claims = g._verify_assertion(form.get("assertion", ""))
            except ValueError as e:
                self._oauth_error(400, "invalid_grant", str(e))
                return
            if claims.get("target_audience"):
                issued = g._issue("id", "jwt-bearer", claims["iss"], audience=claims["target_audience"])
                self._send(200, {"id_token": issued.token})
                return
            issued = g._issue(
                "access", "jwt-bearer", claims["iss"], scopes=str(claims.get("scope", "")).split()
            )
            self._send(
                200, {"access_token": issued.token, "expires_in": issued.expires_in, "token_type": "Bearer"}
            )
        elif grant == "refresh_token":
            token = form.get("refresh_token", "")
            user = g.users.get(token)
            if user is None or token in g.revoked:
                self._oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
                return
            client = (form.get("client_id"), form.get("client_secret"))
            basic = headers.get("authorization", "")
            if basic.startswith("Basic "):  # STS-style client authentication
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                client = (client_id, secret)
            if client != (user["client_id"], user["client_secret"]):
                self._oauth_error(401, "invalid_client", "The OAuth client was not found.")
                return
            issued = g._issue(
                "access", "refresh_token", user["account"], scopes=form.get("scope", "").split()
            )
            self._send(
                200, {"access_token": issued.token, "expires_in": issued.expires_in, "token_type": "Bearer"}
            )
        elif grant == "authorization_code":
            code = g.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if code is None or form.get("redirect_uri") != code["redirect_uri"]:
                self._oauth_error(400, "invalid_grant", "Malformed auth code.")
                return
            if b64url(hashlib.sha256(verifier.encode()).digest()) != code["challenge"]:
                self._oauth_error(400, "invalid_grant", "Invalid code verifier.")
                return
            refresh_token = "1//fake-refresh-" + secrets.token_urlsafe(12)
            g.users[refresh_token] = {
                "client_id": form.get("client_id", ""),
                "client_secret": form.get("client_secret", ""),
                "account": "signed-in@example.com",
            }
            issued = g._issue("access", "authorization_code", "signed-in@example.com")
            self._send(
                200,
                {
                    "access_token": issued.token,
                    "refresh_token": refresh_token,
                    "expires_in": issued.expires_in,
                    "scope": code["scope"],
                    "token_type": "Bearer",
                },
            )
        else:
            self._oauth_error(400, "unsupported_grant_type", str(grant))

    def _sts(self, form: dict[str, str]) -> None:
        g = self.google
        if form.get("grant_type") != TOKEN_EXCHANGE or not form.get("subject_token"):
            self._oauth_error(400, "invalid_request", "not a token exchange")
            return
        subject_type = form.get("subject_token_type", "")
        subject = form["subject_token"]
        if subject_type == "urn:ietf:params:aws:token-type:aws4_request":
            # A serialized, SigV4-signed GetCallerIdentity request.
            signed = json.loads(urllib.parse.unquote(subject))
            auth = {h["key"].lower(): h["value"] for h in signed["headers"]}.get("authorization", "")
            if not auth.startswith("AWS4-HMAC-SHA256 Credential="):
                self._oauth_error(400, "invalid_grant", "subject token is not a signed AWS request")
                return
            subject = auth.split("Credential=")[1].split("/")[0]
        issued = g._issue(
            "access",
            "sts",
            f"principal://{form.get('audience', '')}/subject/{subject}",
            subject_token_type=subject_type,
            audience=form.get("audience", ""),
        )
        self._send(
            200,
            {
                "access_token": issued.token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
            },
        )

    def _iam(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        g = self.google
        caller = g._bearer_principal(headers)
        if caller is None:
            self._api_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return
        email, _, method = path.removeprefix("/v1/projects/-/serviceAccounts/").partition(":")
        if g.impersonable is not None and email not in g.impersonable:
            self._api_error(
                403, "PERMISSION_DENIED", f"Permission 'iam.serviceAccounts.getAccessToken' denied on {email}"
            )
            return
        detail = {
            "caller": caller,
            "delegates": body.get("delegates") or [],
            "quota": headers.get("x-goog-user-project"),
        }
        if method == "generateAccessToken":
            lifetime = int(str(body.get("lifetime", "3600s")).rstrip("s"))
            issued = g._issue(
                "access", "impersonation", email, expires_in=lifetime, scopes=body.get("scope"), **detail
            )
            expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
            self._send(200, {"accessToken": issued.token, "expireTime": expire})
        elif method == "generateIdToken":
            issued = g._issue("id", "impersonation", email, audience=body.get("audience", ""), **detail)
            self._send(200, {"token": issued.token})
        else:
            self._api_error(404, "NOT_FOUND", method)


class RoutedSession(requests.Session):
    """A requests session that sends Google's fixed hosts to a ``FakeGoogle``.

    Test-only transport, handed to ``GoogleSource(session_factory=...)``: the
    request google-auth builds is unchanged but for the scheme, host and port.
    """

    def __init__(self, fake: FakeGoogle) -> None:
        super().__init__()
        self.fake = fake
        self.trust_env = False  # no proxy from the environment for 127.0.0.1

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        text = url.decode() if isinstance(url, bytes) else url
        split = urllib.parse.urlsplit(text)
        if split.hostname in GOOGLE_HOSTS:
            text = self.fake.url + split.path + (f"?{split.query}" if split.query else "")
        return super().request(method, text, *args, **kwargs)


def routed(fake: FakeGoogle) -> functools.partial[RoutedSession]:
    return functools.partial(RoutedSession, fake)


def fake_google() -> Iterator[FakeGoogle]:
    """Body of a pytest fixture: ``yield from fake_google()``."""
    with FakeGoogle() as fake:
        yield fake
