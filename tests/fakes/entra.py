"""A fake Microsoft Entra ID authority, managed-identity endpoints and ``az`` for the azure tests.

``FakeEntra`` serves HTTPS on 127.0.0.1 with a certificate from a test CA made
here (``TestCA``), so real azure-identity/MSAL code runs against it unchanged:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``
- ``POST /{tenant}/oauth2/v2.0/token``: ``client_credentials`` (client secret,
  certificate-signed or federated jwt-bearer assertions), ``refresh_token``,
  ``device_code`` and ``authorization_code`` grants
- ``POST /{tenant}/oauth2/v2.0/devicecode`` and ``POST /devicelogin`` (where the
  test, playing the person, enters the user code)
- ``GET /{tenant}/oauth2/v2.0/authorize`` (the "browser": answers with the code
  to post back to the redirect URI)

``FakeManagedIdentity`` answers plain HTTP on loopback as App Service
(``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``) and IMDS
(``AZURE_POD_IDENTITY_AUTHORITY_HOST``). ``FAKE_AZ`` is an ``az`` executable.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.fakes.server import LocalHTTPServer

TENANT = "tokend-test-tenant"
USER_OID = "00000000-0000-0000-0000-0000000000a1"
USERNAME = "dev@tokend.test"
RESERVED_SCOPES = {"openid", "profile", "offline_access"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- certificates ------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestCA:
    """A CA made for one test session; issues the fake's TLS certificate and client certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = _key()
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("tokend test CA"))
            .issuer_name(_name("tokend test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = directory / "test-ca.pem"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = _key()
        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def server_files(self) -> tuple[Path, Path]:
        cert_path, key_path = self.directory / "server.pem", self.directory / "server.key"
        if not cert_path.exists():  # one per CA: key generation is the slow part
            cert, key = self.issue("127.0.0.1", server=True)
            key_path.write_bytes(_pem_key(key))
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def client_certificate(self, name: str) -> tuple[Path, x509.Certificate]:
        """A PEM file with the private key and certificate of an app (CertificateCredential)."""
        cert, key = self.issue(name, server=False)
        path = self.directory / f"{name}.pem"
        path.write_bytes(_pem_key(key) + cert.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o600)
        return path, cert


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# -- the fake authority ---------------------------------------------------------------------


@dataclass
class App:
    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    federated_tokens: set[str] = field(default_factory=set)


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    approved: bool = False
    redeemed: bool = False


@dataclass
class Grant:
    """One request the fake answered, for assertions (never a secret)."""

    path: str
    grant_type: str
    client_id: str
    scope: str
    status: int


class FakeEntra:
    """An Entra ID authority over HTTPS on 127.0.0.1; start with ``with FakeEntra(ca) as entra``."""

    def __init__(self, ca: TestCA, *, expires_in: int = 3600, tenant: str = TENANT) -> None:
        self.ca = ca
        self.tenant = tenant
        self.expires_in = expires_in
        self.refresh_in: int | None = None
        self.apps: dict[str, App] = {}
        self.flows: dict[str, DeviceFlow] = {}
        self.auth_codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: dict[str, dict[str, str]] = {}
        self.issued: list[str] = []  # every access token handed out, in order
        self.grants: list[Grant] = []
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self.delay = 0.0
        self.lock = threading.Lock()
        self._counter = 0
        self._server: LocalHTTPServer | None = None

    # -- set-up --------------------------------------------------------------------------

    def register(self, client_id: str, **kw: Any) -> App:
        app = App(client_id=client_id, **kw)
        self.apps[client_id] = app
        return app

    def fail_next(self, status: int, error: str, description: str, *, times: int = 1) -> None:
        """The next token requests answer an Entra error (``description`` starts with AADSTS…)."""
        body = {
            "error": error,
            "error_description": f"{description}\r\nTrace ID: 7d2e1b0c-0000\r\nCorrelation ID: 4f1a-0000\r\n"
            f"Timestamp: 2023-11-14 22:13:20Z",
            "error_codes": [int(description.split(":")[0][6:])] if description.startswith("AADSTS") else [],
            "timestamp": "2023-11-14 22:13:20Z",
            "trace_id": "7d2e1b0c-0000",
            "correlation_id": "4f1a-0000",
        }
        self.failures.extend([(status, body)] * times)

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    # -- the person -------------------------------------------------------------------------

    def pending_user_codes(self) -> list[str]:
        with self.lock:
            return [f.user_code for f in self.flows.values() if not f.approved]

    def grant_count(self, grant_type: str) -> int:
        with self.lock:
            return sum(1 for g in self.grants if g.grant_type == grant_type and g.status == 200)

    # -- server ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    def __enter__(self) -> FakeEntra:
        self._server = LocalHTTPServer(_handler(self), name="fake-entra", tls=self.ca.server_files()).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.stop()

    # -- token minting ------------------------------------------------------------------------

    def _mint(self, kind: str) -> str:
        with self.lock:
            self._counter += 1
            token = f"entra-{kind}-{self._counter}-{secrets.token_hex(12)}"
            self.issued.append(token)
        return token

    def _id_token(self, client_id: str, nonce: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"{self.url}/{self.tenant}/v2.0",
            "sub": "sub-" + USER_OID,
            "aud": client_id,
            "tid": self.tenant,
            "oid": USER_OID,
            "preferred_username": USERNAME,
            "name": "Test Developer",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        if nonce:
            claims["nonce"] = nonce
        header = {"alg": "none", "typ": "JWT"}
        return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."

    def user_tokens(self, client_id: str, scope: str, nonce: str | None = None) -> dict[str, Any]:
        resource_scope = " ".join(s for s in scope.split() if s not in RESERVED_SCOPES)
        refresh = "entra-rt-" + secrets.token_hex(16)
        with self.lock:
            self.refresh_tokens[refresh] = {"client_id": client_id}
        body = {
            "token_type": "Bearer",
            "scope": resource_scope,
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": self._mint("user"),
            "refresh_token": refresh,
            "id_token": self._id_token(client_id, nonce),
            "client_info": b64url(json.dumps({"uid": USER_OID, "utid": self.tenant}).encode()),
        }
        if self.refresh_in:
            body["refresh_in"] = self.refresh_in
        return body

    def app_tokens(self, kind: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": self._mint(kind),
        }
        if self.refresh_in:
            body["refresh_in"] = self.refresh_in
        return body

    # -- request handling (server threads) ---------------------------------------------------

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.url}/{tenant}"
        return {
            "issuer": f"{self.url}/{self.tenant}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "tokend.test",
        }

    def device_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        flow = DeviceFlow(
            device_code="dc-" + secrets.token_hex(16),
            user_code="".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9)),
            client_id=form.get("client_id", ""),
            scope=form.get("scope", ""),
        )
        with self.lock:
            self.flows[flow.device_code] = flow
        uri = f"{self.url}/devicelogin"
        return 200, {
            "device_code": flow.device_code,
            "user_code": flow.user_code,
            "verification_uri": uri,
            "expires_in": 300,
            "interval": 1,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{flow.user_code} to authenticate.",
        }

    def device_login(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = form.get("code", "").strip().upper()
        with self.lock:
            for flow in self.flows.values():
                if flow.user_code == code and not flow.approved:
                    flow.approved = True
                    return 200, {"signed_in": USERNAME}
        return 400, {"error": "invalid_user_code"}

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code = "ac-" + secrets.token_hex(16)
        with self.lock:
            self.auth_codes[code] = {
                "client_id": query.get("client_id", ""),
                "scope": query.get("scope", ""),
                "redirect_uri": query.get("redirect_uri", ""),
                "code_challenge": query.get("code_challenge", ""),
                "nonce": query.get("nonce", ""),
            }
        return 200, {"code": code, "state": query.get("state", ""), "redirect_uri": query.get("redirect_uri")}

    def token(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if self.delay:
            time.sleep(self.delay)
        status, body = self._token(path, grant, form)
        with self.lock:
            self.grants.append(Grant(path, grant, form.get("client_id", ""), form.get("scope", ""), status))
        return status, body

    def _token(self, path: str, grant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            return failure
        client_id = form.get("client_id", "")
        if grant == "client_credentials":
            return self._client_credentials(path, client_id, form)
        if grant == "refresh_token":
            with self.lock:
                known = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if known is None:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS70043: The refresh token has expired or is invalid due to "
                    "sign-in frequency checks by conditional access.\r\nTrace ID: 1\r\nCorrelation ID: 2",
                    "error_codes": [70043],
                    "suberror": "bad_token",
                }
            return 200, self.user_tokens(client_id, form.get("scope", ""))
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            with self.lock:
                flow = self.flows.get(form.get("device_code", ""))
                if flow is None or flow.redeemed:
                    return 400, {"error": "expired_token", "error_description": "AADSTS70019: expired"}
                if not flow.approved:
                    return 400, {
                        "error": "authorization_pending",
                        "error_description": "AADSTS70016: Authorization is pending.",
                    }
                flow.redeemed = True
            return 200, self.user_tokens(client_id, flow.scope)
        if grant == "authorization_code":
            with self.lock:
                request = self.auth_codes.pop(form.get("code", ""), None)
            if request is None or not _pkce_ok(request["code_challenge"], form.get("code_verifier", "")):
                return 400, {"error": "invalid_grant", "error_description": "AADSTS54005: code redeemed"}
            scope = form.get("scope") or request["scope"]
            return 200, self.user_tokens(client_id, scope, nonce=request["nonce"] or None)
        return 400, {"error": "unsupported_grant_type", "error_description": f"AADSTS70003: {grant}"}

    def _client_credentials(
        self, path: str, client_id: str, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        app = self.apps.get(client_id)
        if app is None:
            return 400, {
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier '{client_id}' was not found "
                f"in the directory '{self.tenant}'.",
                "error_codes": [700016],
            }
        if "client_secret" in form:
            if app.secret is None or form["client_secret"] != app.secret:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret "
                    f"being sent in the request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{client_id}'.\r\nTrace ID: 9\r\nCorrelation ID: 8",
                    "error_codes": [7000215],
                }
            return 200, self.app_tokens("secret")
        assertion = form.get("client_assertion", "")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000218: no credential"}
        if assertion in app.federated_tokens:
            return 200, self.app_tokens("federated")
        cert = app.certificate
        if cert is not None and _assertion_ok(assertion, cert, client_id, path, self.url):
            return 200, self.app_tokens("certificate")
        return 401, {
            "error": "invalid_client",
            "error_description": "AADSTS700027: The certificate with identifier used to sign the client "
            "assertion is not registered on application.",
            "error_codes": [700027],
        }


def _pkce_ok(challenge: str, verifier: str) -> bool:
    if not challenge:
        return True
    return b64url(hashlib.sha256(verifier.encode()).digest()) == challenge


def _assertion_ok(assertion: str, cert: x509.Certificate, client_id: str, path: str, base: str) -> bool:
    """Verify MSAL's certificate-signed client assertion (RS256 or PS256) and its claims."""
    try:
        head_b64, claims_b64, sig_b64 = assertion.split(".")
        header = json.loads(b64url_decode(head_b64))
        claims = json.loads(b64url_decode(claims_b64))
        signed = f"{head_b64}.{claims_b64}".encode()
        signature = b64url_decode(sig_b64)
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        if header["alg"] == "RS256":
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif header["alg"] == "PS256":
            key.verify(
                signature,
                signed,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                hashes.SHA256(),
            )
        else:
            return False
    except Exception:
        return False
    now = time.time()
    return (
        claims.get("iss") == client_id
        and claims.get("sub") == client_id
        and claims.get("aud") == base + path
        and claims.get("exp", 0) > now
    )


def _handler(fake: FakeEntra) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._send(200, fake.openid_configuration(parts[0]))
            elif len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "authorize"]:
                self._send(*fake.authorize(query))
            else:
                self._send(404, {"error": "not_found", "error_description": url.path})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            form = self._form()
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                self._send(*fake.token(url.path, form))
            elif len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "devicecode"]:
                self._send(*fake.device_code(form))
            elif parts == ["devicelogin"]:
                self._send(*fake.device_login(form))
            else:
                self._send(404, {"error": "not_found", "error_description": url.path})

    return Handler


# -- managed identity ------------------------------------------------------------------------


class FakeManagedIdentity:
    """App Service (``/msi/token``, X-IDENTITY-HEADER) and IMDS (``/metadata/identity/oauth2/token``)."""

    IDENTITY_HEADER = "fake-identity-header-9f3c"

    def __init__(self, *, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.requests: list[dict[str, str]] = []
        self.issued: list[str] = []
        self.lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def app_service_env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url + "/msi/token", "IDENTITY_HEADER": self.IDENTITY_HEADER}

    def imds_env(self) -> dict[str, str]:
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.url}

    def __enter__(self) -> FakeManagedIdentity:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, body = fake.answer(url.path, query, dict(self.headers.items()))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = LocalHTTPServer(Handler, name="fake-mi").start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.stop()

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        lower = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            self.requests.append({"path": path, **query})
            n = len(self.requests)
        token = f"mi-token-{n}-{secrets.token_hex(8)}"
        expires_on = int(time.time()) + self.expires_in
        if path == "/msi/token":
            if lower.get("x-identity-header") != self.IDENTITY_HEADER:
                return 401, {"statusCode": 401, "message": "bad identity header"}
            self.issued.append(token)
            return 200, {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": query.get("resource"),
                "token_type": "Bearer",
                "client_id": query.get("client_id", "system-assigned"),
            }
        if path == "/metadata/identity/oauth2/token":
            if lower.get("metadata") != "true":
                return 400, {"error": "invalid_request", "error_description": "Metadata header missing"}
            self.issued.append(token)
            return 200, {
                "access_token": token,
                "expires_in": str(self.expires_in),
                "expires_on": str(expires_on),
                "ext_expires_in": str(self.expires_in),
                "not_before": str(expires_on - self.expires_in),
                "resource": query.get("resource"),
                "token_type": "Bearer",
            }
        return 404, {"error": "not_found"}


class SilentEndpoint:
    """Accepts connections and never answers: an IMDS that hangs, to prove fetches are bounded."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, name="silent-endpoint", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(conn)

    def __enter__(self) -> SilentEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


# -- the Azure CLI ------------------------------------------------------------------------------

#: A stand-in for ``az``: ``login --user U [--subscription S]``, ``logout``,
#: ``account set --subscription S`` and ``account get-access-token`` (what
#: AzureCliCredential runs), keeping its state in azureProfile.json and
#: msal_token_cache.json like the real CLI. Each token request appends a line
#: to fake-az.log in the config dir.
FAKE_AZ = """\
import json, os, secrets, sys, time

base = os.environ.get("AZURE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".azure")
os.makedirs(base, exist_ok=True)
profile_path = os.path.join(base, "azureProfile.json")
cache_path = os.path.join(base, "msal_token_cache.json")
args = sys.argv[1:]


def load(path, default):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def save(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


profile = load(profile_path, {"subscriptions": []})
cache = load(cache_path, {"Account": {}, "AccessToken": {}, "RefreshToken": {}})
if args[:1] == ["login"]:
    user = opt("--user", "dev@tokend.test")
    sub = opt("--subscription", "sub-" + user.split("@")[0])
    profile["subscriptions"] = [
        {"id": sub, "name": sub, "isDefault": True, "tenantId": "tokend-test-tenant",
         "user": {"name": user, "type": "user"}}
    ]
    cache["Account"] = {user + "-login.test-tenant": {"username": user}}
    save(profile_path, profile)
    save(cache_path, cache)
elif args[:1] == ["logout"]:
    profile["subscriptions"] = []
    cache["Account"] = {}
    save(profile_path, profile)
    save(cache_path, cache)
elif args[:2] == ["account", "set"]:
    sub = opt("--subscription")
    for s in profile["subscriptions"]:
        s["isDefault"] = s["id"] == sub
    save(profile_path, profile)
elif args[:2] == ["account", "add"]:  # not real az: a second subscription for account set
    sub, user = opt("--subscription"), opt("--user")
    profile["subscriptions"].append(
        {"id": sub, "name": sub, "isDefault": False, "tenantId": "tokend-test-tenant",
         "user": {"name": user, "type": "user"}})
    save(profile_path, profile)
elif args[:2] == ["account", "get-access-token"]:
    current = [s for s in profile["subscriptions"] if s.get("isDefault")]
    if not current:
        sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
        sys.exit(1)
    sub = current[0]
    expires_in = int(load(os.path.join(base, "fake-az-expires-in.json"), 3600))
    token = "az-%s-%s-%s" % (sub["user"]["name"].split("@")[0], sub["id"], secrets.token_hex(8))
    with open(os.path.join(base, "fake-az.log"), "a") as f:
        f.write("%s %s\\n" % (token, opt("--resource")))
    expires_on = int(time.time()) + expires_in
    print(json.dumps({
        "accessToken": token,
        "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires_on)),
        "expires_on": expires_on,
        "subscription": sub["id"],
        "tenant": sub["tenantId"],
        "tokenType": "Bearer",
    }, indent=2))
else:
    sys.stderr.write("fake az: unsupported %r\\n" % (args,))
    sys.exit(2)
"""


def install_fake_az(bin_dir: Path, python: str) -> Path:
    """Write an ``az`` executable into ``bin_dir`` (put it first on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "az"
    script.write_text(f"#!{python}\n" + FAKE_AZ)
    script.chmod(0o755)
    return script


def az_log(config_dir: Path) -> list[str]:
    """Tokens the fake az handed out, in order."""
    try:
        text = (config_dir / "fake-az.log").read_text()
    except FileNotFoundError:
        return []
    return [line.split()[0] for line in text.splitlines() if line.strip()]


#: A stand-in browser for ``BROWSER``: plays the person signing in. It forks
#: (webbrowser waits for the command, and the redirect server only listens
#: once the browser has been opened), asks the fake authority for the code
#: and posts it to the redirect URI as Entra's form_post does.
FAKE_BROWSER = """\
import json, os, ssl, sys, time, urllib.parse, urllib.request

url = sys.argv[1]
with open(os.environ["FAKE_BROWSER_LOG"], "a") as f:
    f.write(url + "\\n")
if os.fork():
    sys.exit(0)
time.sleep(0.3)
context = ssl.create_default_context(cafile=os.environ["FAKE_BROWSER_CA"])
with urllib.request.urlopen(url, context=context, timeout=10) as answer:
    doc = json.load(answer)
form = urllib.parse.urlencode({"code": doc["code"], "state": doc["state"]}).encode()
urllib.request.urlopen(urllib.request.Request(doc["redirect_uri"], data=form), timeout=10).read()
"""


def install_fake_browser(bin_dir: Path, python: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "fake-browser"
    script.write_text(f"#!{python}\n" + FAKE_BROWSER)
    script.chmod(0o755)
    return script


def temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="td", dir="/tmp"))
    try:
        yield path
    finally:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
