"""``auth = "kubernetes"`` against a real OpenBao: the login's service-account token is checked
through Kubernetes' TokenReview API, a small fake here that knows exactly one token and
requires OpenBao's reviewer token.
"""

from __future__ import annotations

import http.server
import json
import threading
import time

from tests.integration.conftest import Sandbox
from tests.integration.openbao import JwtSigner, OpenBao, openbao
from tests.integration.test_openbao import READ_POLICY, get, vault_profile

__all__ = ["openbao"]  # a fixture, used by name


class _TokenReview(http.server.BaseHTTPRequestHandler):
    """Kubernetes' TokenReview API, as OpenBao's kubernetes auth method calls it: it knows one token."""

    reviewer = ""
    account_token = ""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path != "/apis/authentication.k8s.io/v1/tokenreviews" or (
            self.headers.get("Authorization") != f"Bearer {self.reviewer}"
        ):
            self.send_response(401)
            self.end_headers()
            return
        known = body.get("spec", {}).get("token") == self.account_token
        status: dict[str, object] = {"authenticated": known}
        if known:
            status["user"] = {
                "username": "system:serviceaccount:default:app",
                "uid": "uid-app-1",
                "groups": [],
            }
        answer = json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}
        )
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: object) -> None:
        pass


def _self_signed_pem() -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tokend-test-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_kubernetes_login_verified_by_token_review(sandbox: Sandbox, openbao: OpenBao) -> None:
    signer = JwtSigner()
    now = int(time.time())
    account_token = signer.sign(
        {
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:default:app",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/service-account.name": "app",
            "kubernetes.io/serviceaccount/service-account.uid": "uid-app-1",
            "iat": now,
            "exp": now + 600,
        }
    )
    _TokenReview.reviewer, _TokenReview.account_token = "reviewer-jwt", account_token
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenReview)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        openbao.enable("kubernetes", "kubernetes", auth=True)
        openbao.policy("reader", READ_POLICY)
        openbao.api(
            "POST",
            "auth/kubernetes/config",
            {
                "kubernetes_host": f"http://127.0.0.1:{api.server_address[1]}",
                "token_reviewer_jwt": "reviewer-jwt",
                "kubernetes_ca_cert": _self_signed_pem(),  # required, unused: the API is plain http here
                "disable_local_ca_jwt": True,
            },
        )
        openbao.api(
            "POST",
            "auth/kubernetes/role/app",
            {
                "bound_service_account_names": ["app"],
                "bound_service_account_namespaces": ["default"],
                "token_policies": ["reader"],
                "token_ttl": "10m",
            },
        )
        openbao.bao("kv", "put", "secret/t9/k8s", "value=k8s-secret")
        (sandbox.root / "sa-token").write_text(account_token)
        (sandbox.root / "other-token").write_text(
            JwtSigner().sign({"sub": "system:serviceaccount:default:app"})
        )
        sandbox.write_config(
            "".join(
                vault_profile(
                    name,
                    openbao,
                    mount="secret",
                    path="t9/k8s",
                    auth="kubernetes",
                    role="app",
                    jwt=f"file:{sandbox.root / file}",
                )
                for name, file in (("pod", "sa-token"), ("stranger", "other-token"))
            )
        )
        r = get(sandbox, "pod")
        assert (r.status, r.out.strip()) == (0, "k8s-secret"), r
        r = get(sandbox, "stranger")
        assert r.status != 0 and "kubernetes" in r.err and "refused" in r.err, r
    finally:
        api.shutdown()
        api.server_close()
        thread.join(10)
