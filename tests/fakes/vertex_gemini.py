"""A fake Vertex AI endpoint for Gemini models (what the Gemini CLI calls in Vertex mode).

``POST …/projects/P/locations/L/publishers/google/models/MODEL:generateContent``,
``:streamGenerateContent`` (server-sent events with ``?alt=sse``, as the real
API answers the @google/genai SDK, else one JSON array) and ``:countTokens``
answer only ``Authorization: Bearer T`` for T in ``accepted()``: one model
turn with the reply text. Anything else is 401 or 404 in Google's error
shape. Every request is recorded.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import LocalHTTPServer

METHODS = ("generateContent", "streamGenerateContent", "countTokens")


class FakeVertexGemini:
    def __init__(self, accepted: Callable[[], list[str]], reply: str = "pong from gemini on vertex") -> None:
        self.accepted = accepted
        self.reply = reply
        #: (path with query, token carried, status answered)
        self.seen: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    def __enter__(self) -> FakeVertexGemini:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = LocalHTTPServer(Handler, name="fake-vertex-gemini").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        """What ``GOOGLE_VERTEX_BASE_URL`` takes (the SDK adds ``/v1/projects/…``)."""
        assert self._server is not None
        return self._server.url

    def record(self, path: str, token: str | None, status: int) -> None:
        with self._lock:
            self.seen.append((path, token, status))

    def answer(self) -> dict[str, Any]:
        """One ``GenerateContentResponse``."""
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": self.reply}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
            "modelVersion": "gemini-2.5-flash",
        }


def _error(code: int, status: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FakeVertexGemini
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.owner.record(self.path, None, 404)
        self._send(404, _error(404, "NOT_FOUND", "not found"))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        url = urlsplit(self.path)
        if token is None or token not in self.owner.accepted():
            self.owner.record(self.path, token, 401)
            self._send(401, _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
            return
        _, _, method = url.path.rpartition(":")
        if "/publishers/google/models/" not in url.path or method not in METHODS:
            self.owner.record(self.path, token, 404)
            self._send(404, _error(404, "NOT_FOUND", f"no such method: {url.path}"))
            return
        self.owner.record(self.path, token, 200)
        if method == "countTokens":
            self._send(200, b'{"totalTokens": 1}')
        elif method == "generateContent":
            self._send(200, json.dumps(self.owner.answer()).encode())
        elif parse_qs(url.query).get("alt") == ["sse"]:
            self._send(200, f"data: {json.dumps(self.owner.answer())}\r\n\r\n".encode(), "text/event-stream")
        else:
            self._send(200, json.dumps([self.owner.answer()]).encode())
