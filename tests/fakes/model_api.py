"""What the fake model APIs share: a local server that records each request with its credential.

A subclass of ``RecordingApi`` names its ``Handler`` (an ``ApiHandler``); the
handler reaches the fake as ``self.fake``, answers with ``send`` or
``send_events`` (server-sent events) and records what it saw with
``self.fake.record``, so a test can check that every request carried exactly
the credential tokend served.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from tests.fakes.server import LocalHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    #: the credential the request carried: an API key, a bearer token or a SigV4 access key id
    key: str | None
    status: int


class ApiHandler(http.server.BaseHTTPRequestHandler):
    fake: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def route(self) -> str:
        return self.path.split("?")[0]

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else None

    def send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Server-sent events, each named by its ``type``."""
        body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        self.send(200, body.encode(), "text/event-stream")


class RecordingApi:
    """A fake API on 127.0.0.1 for the life of a ``with`` block; ``seen`` lists every request."""

    Handler: ClassVar[type[ApiHandler]]
    name: ClassVar[str] = "fake-api"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    def __enter__(self) -> Self:
        handler = type("BoundHandler", (self.Handler,), {"fake": self})
        self._server = LocalHTTPServer(handler, name=self.name, poll_interval=0.05).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None
        return self._server.url

    def record(self, method: str, path: str, key: str | None, status: int) -> None:
        with self._lock:
            self.seen.append(Seen(method, path, key, status))

    def calls(self, path: str | None = None) -> list[Seen]:
        """What was seen (at ``path`` only, when given), in order."""
        with self._lock:
            return [s for s in self.seen if path is None or s.path == path]
