"""A fake Anthropic Messages API (what Claude Code speaks) that insists on the exact key.

``POST /v1/messages`` answers only a request whose ``X-Api-Key`` (or
``Authorization: Bearer``) passes ``accept(key)``: one assistant text block,
as server-sent events when the request asks to stream. Anything else gets a
401 ``authentication_error``; other paths are 404 after the same check. Every
request is recorded with the key it carried and the status it got.
``message`` and ``events`` are the Messages API's answer shapes, which Vertex
AI and Bedrock pass through for Anthropic models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.fakes.model_api import ApiHandler, RecordingApi, Seen

__all__ = ["FakeAnthropicApi", "Seen", "events", "message"]

NOT_FOUND = b'{"type":"error","error":{"type":"not_found_error"}}'


def message(text: str, model: str = "claude-fake") -> dict[str, Any]:
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


def events(text: str, model: str = "claude-fake") -> list[dict[str, Any]]:
    start = dict(message("", model), content=[], stop_reason=None)
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


class _Handler(ApiHandler):
    fake: FakeAnthropicApi

    def _authorized(self) -> str | None:
        key = (self.headers.get("X-Api-Key") or "").strip() or self.bearer()
        if key is not None and self.fake.accept(key):
            return key
        self.fake.record(self.command, self.route, key, 401)
        body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
        self.send(401, json.dumps(body).encode())
        return None

    def do_GET(self) -> None:
        key = self._authorized()
        if key is not None:
            self.fake.record("GET", self.route, key, 404)
            self.send(404, NOT_FOUND)

    def do_POST(self) -> None:
        raw = self.body()
        key = self._authorized()
        if key is None:
            return
        if self.route != "/v1/messages":
            self.fake.record("POST", self.route, key, 404)
            self.send(404, NOT_FOUND)
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        model = str(request.get("model") or "claude-fake")
        self.fake.record("POST", self.route, key, 200)
        if request.get("stream"):
            self.send_events(events(self.fake.reply, model))
        else:
            self.send(200, json.dumps(message(self.fake.reply, model)).encode())


class FakeAnthropicApi(RecordingApi):
    Handler = _Handler
    name = "fake-anthropic"

    def __init__(self, accept: Callable[[str], bool], reply: str = "pong from the fake") -> None:
        super().__init__(reply)
        self.accept = accept

    @property
    def url(self) -> str:
        """The base URL, as ``ANTHROPIC_BASE_URL`` wants it (no ``/v1``)."""
        return self.root

    def calls(self, path: str | None = "/v1/messages") -> list[Seen]:
        return super().calls(path)
