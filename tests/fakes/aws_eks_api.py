"""A fake EKS Kubernetes API server over HTTPS (kubectl drops credentials over plain http).

A test CA and a server certificate for 127.0.0.1 are made with ``cryptography``;
the server answers ``GET /api/v1/namespaces/default`` only for a bearer token
that looks like an EKS token for its cluster (the presigned STS URL inside
signs the ``x-k8s-aws-id`` header) and records every token it is shown.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalHTTPServer

PATH = "/api/v1/namespaces/default"


def make_ca_and_cert(directory: Path) -> tuple[bytes, Path, Path]:
    """(CA certificate PEM, server cert path, server key path) for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokend test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path = directory / "server.crt"
    key_path = directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM), cert_path, key_path


def eks_token_problem(token: str, cluster: str) -> str | None:
    """Why ``token`` is not an EKS token for ``cluster`` (None: it is one)."""
    if not token.startswith("k8s-aws-v1."):
        return "no k8s-aws-v1. prefix"
    body = token.removeprefix("k8s-aws-v1.")
    try:
        url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except ValueError:
        return "not base64url"
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if q.get("Action") != "GetCallerIdentity":
        return "not a GetCallerIdentity URL"
    if "x-k8s-aws-id" not in q.get("X-Amz-SignedHeaders", "").split(";"):
        return "x-k8s-aws-id is not signed"
    if not q.get("X-Amz-Signature"):
        return "unsigned"
    return None


@dataclass
class FakeEksApi:
    cluster: str
    url: str = ""
    ca_pem: bytes = b""
    tokens: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _handler(api: FakeEksApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
            problem = eks_token_problem(token, api.cluster) if token else "no bearer token"
            if problem is not None:
                api.refused.append(problem)
                self._send(
                    401,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": "Unauthorized",
                        "code": 401,
                    },
                )
                return
            api.tokens.append(token)
            if urlsplit(self.path).path != PATH:
                self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
                return
            self._send(
                200,
                {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {"name": "default"},
                    "status": {"phase": "Active"},
                },
            )

    return Handler


@contextlib.contextmanager
def fake_eks_api(cluster: str) -> Iterator[FakeEksApi]:
    api = FakeEksApi(cluster)
    with tempfile.TemporaryDirectory(prefix="tdk8s") as tmp:
        api.ca_pem, cert, key = make_ca_and_cert(Path(tmp))
        with LocalHTTPServer(_handler(api), tls=(cert, key)) as server:
            api.url = server.url
            yield api
