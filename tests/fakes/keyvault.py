"""A fake Azure Key Vault data plane over HTTPS on 127.0.0.1, behind ``FakeEntra``'s tokens.

``GET /secrets/{name}[/{version}]?api-version=7.4`` answers as Key Vault does
(``value``, ``id``, ``attributes``), with its error shapes for an unknown
secret (404 SecretNotFound), a caller without access (403 ForbiddenByRbac),
a disabled secret, a missing or foreign bearer token (401 with the
``WWW-Authenticate`` challenge naming the tenant) and an unknown api-version.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.entra import FakeEntra, TestCA
from tests.fakes.server import LocalHTTPServer

API_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5")


@dataclass
class Seen:
    method: str
    path: str
    api_version: str | None
    token: str | None


@dataclass
class Version:
    id: str
    value: str
    enabled: bool = True


class FakeKeyVault:
    def __init__(self, ca: TestCA, entra: FakeEntra) -> None:
        self.ca = ca
        self.entra = entra
        self.secrets: dict[str, list[Version]] = {}
        self.denied: set[str] = set()  # secrets the caller has no role on
        self.requests: list[Seen] = []
        self._failures: list[int] = []
        self._hang = False
        self._stop = threading.Event()
        self._server: LocalHTTPServer | None = None

    def set_secret(self, name: str, value: str) -> str:
        version = secrets.token_hex(16)
        self.secrets.setdefault(name, []).append(Version(version, value))
        return version

    def fail(self, status: int, times: int = 1) -> None:
        self._failures.extend([status] * times)

    def hang(self, on: bool = True) -> None:
        self._hang = on

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def __enter__(self) -> FakeKeyVault:
        self._server = LocalHTTPServer(
            _handler(self), name="fake-keyvault", tls=self.ca.server_files(), poll_interval=0.05
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.stop()

    def answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.startswith("Bearer ") else None
        self.requests.append(Seen(method, path, query.get("api-version"), token))
        if self._hang:
            self._stop.wait(30)
        if self._failures:
            status = self._failures.pop(0)
            return status, _error("ServiceUnavailable" if status >= 500 else "Throttled", "injected"), {}
        if query.get("api-version") not in API_VERSIONS:
            return 400, _error("BadParameter", "The request URI contains an invalid api-version."), {}
        if token is None or token not in self.entra.issued:
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.entra.tenant}", '
                'resource="https://vault.azure.net"'
            )
            return (
                401,
                _error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
                {"WWW-Authenticate": challenge},
            )
        parts = path.strip("/").split("/")
        if method != "GET" or parts[0] != "secrets" or len(parts) not in (2, 3):
            return 404, _error("NotFound", f"Not found: {path}"), {}
        name, version = parts[1], parts[2] if len(parts) == 3 else ""
        versions = self.secrets.get(name)
        found = versions and (
            next((v for v in versions if v.id == version), None) if version else versions[-1]
        )
        if not found:
            what = f"{name}/{version}" if version else name
            return (
                404,
                _error(
                    "SecretNotFound",
                    f"A secret with (name/id) {what} was not found in this key vault. If you recently "
                    "deleted this secret you may be able to recover it using the correct recovery command. "
                    "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
                ),
                {},
            )
        if name in self.denied:
            return (
                403,
                _error(
                    "Forbidden",
                    "Caller is not authorized to perform action on resource.\r\nCaller: appid=app-1\r\n"
                    "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\n"
                    "Vault: kv;location=eastus\r\n",
                    inner="ForbiddenByRbac",
                ),
                {},
            )
        if not found.enabled:
            return (
                403,
                _error(
                    "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
                ),
                {},
            )
        now = int(time.time())
        return (
            200,
            {
                "value": found.value,
                "id": f"{self.url}/secrets/{name}/{found.id}",
                "attributes": {
                    "enabled": True,
                    "created": now,
                    "updated": now,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            },
            {},
        )


def _error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


def _handler(fake: FakeKeyVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, doc, extra = fake.answer(
                "GET", url.path, query, {k.lower(): v for k, v in self.headers.items()}
            )
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def fake_keyvault(ca: TestCA, entra: FakeEntra) -> Iterator[FakeKeyVault]:
    with FakeKeyVault(ca, entra) as fake:
        yield fake
