"""A fake Anthropic Messages API (what Claude Code speaks) that insists on the exact key.

``POST /v1/messages`` answers only a request whose ``X-Api-Key`` (or
``Authorization: Bearer``) passes ``accept(key)``: one assistant text block,
as server-sent events when the request asks to stream. Anything else gets a
401 ``authentication_error``; other paths are 404 after the same check. Every
request is recorded with the key it carried and the status it got.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import LocalHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    key: str | None
    status: int


class FakeAnthropicApi:
    def __init__(self, accept: Callable[[str], bool], reply: str = "pong from the fake") -> None:
        self.accept = accept
        self.reply = reply
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: LocalHTTPServer | None = None

    def __enter__(self) -> FakeAnthropicApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = LocalHTTPServer(Handler, name="fake-anthropic", poll_interval=0.05).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        """The base URL, as ``ANTHROPIC_BASE_URL`` wants it (no ``/v1``)."""
        assert self._server is not None
        return self._server.url

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def calls(self, path: str = "/v1/messages") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]


def _message(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _events(text: str, model: str) -> list[dict[str, Any]]:
    start = _message("", model)
    start["content"] = []
    start["stop_reason"] = None
    return [
        {"type": "message_start", "message": start},
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
    fake: FakeAnthropicApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _key(self) -> str | None:
        key = self.headers.get("X-Api-Key")
        if key:
            return key.strip()
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.startswith("Bearer ") else None

    def _authorized(self, path: str) -> str | None:
        key = self._key()
        if key is not None and self.fake.accept(key):
            return key
        self.fake.record(Seen(self.command, path, key, 401))
        body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
        self._send(401, json.dumps(body).encode(), "application/json")
        return None

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        key = self._authorized(path)
        if key is not None:
            self.fake.record(Seen("GET", path, key, 404))
            self._send(404, b'{"type":"error","error":{"type":"not_found_error"}}', "application/json")

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self._authorized(path)
        if key is None:
            return
        if path != "/v1/messages":
            self.fake.record(Seen("POST", path, key, 404))
            self._send(404, b'{"type":"error","error":{"type":"not_found_error"}}', "application/json")
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        model = str(request.get("model") or "claude-fake")
        self.fake.record(Seen("POST", path, key, 200))
        if request.get("stream"):
            events = _events(self.fake.reply, model)
            body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
            self._send(200, body.encode(), "text/event-stream")
        else:
            self._send(200, json.dumps(_message(self.fake.reply, model)).encode(), "application/json")
