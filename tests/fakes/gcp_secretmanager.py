"""A fake of Secret Manager's REST ``access`` endpoint on 127.0.0.1, behind ``FakeGoogle``'s tokens.

``GET /v1/projects/P/secrets/S/versions/V:access`` (and the regional
``projects/P/locations/L/secrets/...`` form) answers as Google does:
``{"name": "projects/NUMBER/secrets/S/versions/N", "payload": {"data": base64,
"dataCrc32c": "..."}}``; ``latest`` resolves to the newest enabled version.
Only bearer tokens ``FakeGoogle`` issued are accepted, and only for principals
allowed on the secret. Errors use Google's shape
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlparse

from tests.fakes.google import FakeGoogle
from tests.fakes.server import LocalHTTPServer
from tokend.sources.google.secretmanager import crc32c

PROJECT_NUMBER = "123456789012"
_PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/(?:locations/(?P<location>[^/]+)/)?secrets/(?P<secret>[^/]+)"
    r"/versions/(?P<version>[^/:]+):access$"
)


@dataclass
class Seen:
    path: str
    authorization: str
    user_project: str | None
    principal: str | None


class FakeSecretManager:
    def __init__(self, google: FakeGoogle) -> None:
        self.google = google
        self.secrets: dict[str, list[bytes | None]] = {}  # "P/S" -> versions (None: disabled)
        self.allowed: dict[str, set[str]] = {}  # "P/S" -> principals; absent: anyone
        self.requests: list[Seen] = []
        self.corrupt = False
        self._failures: list[tuple[int, str]] = []
        self._hang = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    # -- set-up ------------------------------------------------------------------------

    def add_version(self, project: str, secret: str, value: str | bytes) -> int:
        data = value.encode() if isinstance(value, str) else value
        versions = self.secrets.setdefault(f"{project}/{secret}", [])
        versions.append(data)
        return len(versions)

    def disable(self, project: str, secret: str, version: int) -> None:
        self.secrets[f"{project}/{secret}"][version - 1] = None

    def fail(self, status: int, state: str, times: int = 1) -> None:
        self._failures.extend([(status, state)] * times)

    def hang(self, on: bool = True) -> None:
        self._hang = on

    # -- server --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def __enter__(self) -> FakeSecretManager:
        self._server = LocalHTTPServer(_handler(self), poll_interval=0.05).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.stop()

    # -- answers ---------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        issued = self.google.find(token) if token else None
        principal = issued.principal if issued is not None and issued.kind == "access" else None
        with self._lock:
            self.requests.append(Seen(path, auth, headers.get("x-goog-user-project"), principal))
            failure = self._failures.pop(0) if self._failures else None
        if self._hang:
            self._stop.wait(30)
        if failure is not None:
            return failure[0], _error(failure[0], failure[1], "injected failure")
        match = _PATH.match(path)
        if match is None:
            return 404, _error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
        if principal is None:
            return 401, _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                "cookie or other valid authentication credential.",
            )
        project, secret, version = match["project"], match["secret"], match["version"]
        key = f"{project}/{secret}"
        resource = f"projects/{project}/secrets/{secret}/versions/{version}"
        allowed = self.allowed.get(key)
        if allowed is not None and principal not in allowed:
            return 403, _error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.versions.access' denied for resource '{resource}' "
                "(or it may not exist).",
            )
        versions = self.secrets.get(key)
        if not versions:
            return 404, _error(
                404,
                "NOT_FOUND",
                f"Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found or has no versions.",
            )
        if version == "latest":
            enabled = [i for i, v in enumerate(versions) if v is not None]
            if not enabled:
                return 404, _error(404, "NOT_FOUND", f"Secret [{resource}] not found or has no versions.")
            number = enabled[-1] + 1
        elif version.isdigit() and 1 <= int(version) <= len(versions):
            number = int(version)
        else:
            return 404, _error(404, "NOT_FOUND", f"Secret Version [{resource}] not found.")
        data = versions[number - 1]
        if data is None:
            return 400, _error(
                400, "FAILED_PRECONDITION", f"Secret Version [{resource}] is in DISABLED state."
            )
        crc = crc32c(data) ^ (1 if self.corrupt else 0)
        return 200, {
            "name": f"projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc)},
        }


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _handler(fake: FakeSecretManager) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            status, doc = fake.answer(
                urlparse(self.path).path, {k.lower(): v for k, v in self.headers.items()}
            )
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def fake_secret_manager(google: FakeGoogle) -> Iterator[FakeSecretManager]:
    with FakeSecretManager(google) as fake:
        yield fake
