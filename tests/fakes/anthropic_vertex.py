"""A fake Vertex AI endpoint for Anthropic models (what Claude Code calls with ``CLAUDE_CODE_USE_VERTEX``).

``POST …/publishers/anthropic/models/MODEL:rawPredict`` or ``:streamRawPredict``
answers only ``Authorization: Bearer T`` for T in ``accepted()``: one assistant
text block, as server-sent events when the request asks to stream. Anything
else is 401 in Google's error shape. Every request is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.fakes.anthropic_api import events, message
from tests.fakes.model_api import ApiHandler, RecordingApi


class _Handler(ApiHandler):
    fake: FakeVertexAnthropic

    def do_GET(self) -> None:
        self.fake.record("GET", self.route, None, 404)
        self.send(404, b'{"error": {"code": 404, "status": "NOT_FOUND"}}')

    def do_POST(self) -> None:
        raw = self.body()
        token, path = self.bearer(), self.route
        if token is None or token not in self.fake.accepted():
            self.fake.record("POST", path, token, 401)
            self.send(401, b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}')
            return
        if "/publishers/anthropic/models/" not in path or not path.endswith(("rawPredict", "RawPredict")):
            self.fake.record("POST", path, token, 404)
            self.send(404, b'{"error": {"code": 404, "status": "NOT_FOUND"}}')
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        self.fake.record("POST", path, token, 200)
        if request.get("stream"):
            self.send_events(events(self.fake.reply))
        else:
            self.send(200, json.dumps(message(self.fake.reply)).encode())


class FakeVertexAnthropic(RecordingApi):
    Handler = _Handler
    name = "fake-vertex"

    def __init__(self, accepted: Callable[[], list[str]], reply: str = "pong from vertex") -> None:
        super().__init__(reply)
        self.accepted = accepted

    @property
    def base_url(self) -> str:
        """What ``ANTHROPIC_VERTEX_BASE_URL`` takes."""
        return self.root + "/v1"
