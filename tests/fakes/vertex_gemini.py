"""A fake Vertex AI endpoint for Gemini models (what the Gemini CLI calls in Vertex mode).

``POST …/projects/P/locations/L/publishers/google/models/MODEL:generateContent``,
``:streamGenerateContent`` (server-sent events with ``?alt=sse``, as the real
API answers the @google/genai SDK, else one JSON array) and ``:countTokens``
answer only ``Authorization: Bearer T`` for T in ``accepted()``: one model
turn with the reply text. Anything else is 401 or 404 in Google's error
shape. Every request is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.model_api import ApiHandler, RecordingApi

METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def _error(code: int, status: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


class _Handler(ApiHandler):
    fake: FakeVertexGemini

    # The path is recorded with its query: the SDK asks for ``?alt=sse``.
    def do_GET(self) -> None:
        self.fake.record("GET", self.path, None, 404)
        self.send(404, _error(404, "NOT_FOUND", "not found"))

    def do_POST(self) -> None:
        self.body()
        token, url = self.bearer(), urlsplit(self.path)
        if token is None or token not in self.fake.accepted():
            self.fake.record("POST", self.path, token, 401)
            self.send(401, _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
            return
        _, _, method = url.path.rpartition(":")
        if "/publishers/google/models/" not in url.path or method not in METHODS:
            self.fake.record("POST", self.path, token, 404)
            self.send(404, _error(404, "NOT_FOUND", f"no such method: {url.path}"))
            return
        self.fake.record("POST", self.path, token, 200)
        if method == "countTokens":
            self.send(200, b'{"totalTokens": 1}')
        elif method == "generateContent":
            self.send(200, json.dumps(self.fake.answer()).encode())
        elif parse_qs(url.query).get("alt") == ["sse"]:
            self.send(200, f"data: {json.dumps(self.fake.answer())}\r\n\r\n".encode(), "text/event-stream")
        else:
            self.send(200, json.dumps([self.fake.answer()]).encode())


class FakeVertexGemini(RecordingApi):
    Handler = _Handler
    name = "fake-vertex-gemini"

    def __init__(self, accepted: Callable[[], list[str]], reply: str = "pong from gemini on vertex") -> None:
        super().__init__(reply)
        self.accepted = accepted

    @property
    def url(self) -> str:
        """What ``GOOGLE_VERTEX_BASE_URL`` takes (the SDK adds ``/v1/projects/…``)."""
        return self.root

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
