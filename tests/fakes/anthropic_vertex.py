"""A fake Vertex AI endpoint for Anthropic models (what Claude Code calls with ``CLAUDE_CODE_USE_VERTEX``).

``POST …/publishers/anthropic/models/MODEL:rawPredict`` or ``:streamRawPredict``
answers only ``Authorization: Bearer T`` for T in ``accepted()``: one assistant
text block, as server-sent events when the request asks to stream. Anything
else is 401 in Google's error shape. Every request is recorded.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

from tests.fakes.server import LocalHTTPServer


class FakeVertexAnthropic:
    def __init__(self, accepted: Callable[[], list[str]], reply: str = "pong from vertex") -> None:
        self.accepted = accepted
        self.reply = reply
        #: (path, token carried, status answered)
        self.seen: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    def __enter__(self) -> FakeVertexAnthropic:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = LocalHTTPServer(Handler, name="fake-vertex").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def base_url(self) -> str:
        """What ``ANTHROPIC_VERTEX_BASE_URL`` takes."""
        assert self._server is not None
        return self._server.url + "/v1"

    def record(self, path: str, token: str | None, status: int) -> None:
        with self._lock:
            self.seen.append((path, token, status))


def _events(text: str) -> list[dict[str, Any]]:
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 1},
        },
        {"type": "message_stop"},
    ]


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FakeVertexAnthropic
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
        self._send(404, b'{"error": {"code": 404, "status": "NOT_FOUND"}}')

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        path = self.path.split("?")[0]
        if token is None or token not in self.owner.accepted():
            self.owner.record(path, token, 401)
            self._send(401, b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}')
            return
        if "/publishers/anthropic/models/" not in path or not path.endswith(("rawPredict", "RawPredict")):
            self.owner.record(path, token, 404)
            self._send(404, b'{"error": {"code": 404, "status": "NOT_FOUND"}}')
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        self.owner.record(path, token, 200)
        events = _events(self.owner.reply)
        if request.get("stream"):
            body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
            self._send(200, body.encode(), "text/event-stream")
        else:
            message = dict(events[0]["message"], content=[{"type": "text", "text": self.owner.reply}])
            message["stop_reason"] = "end_turn"
            self._send(200, json.dumps(message).encode())
