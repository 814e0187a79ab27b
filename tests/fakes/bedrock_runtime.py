"""A fake Bedrock runtime for Anthropic models that checks each request's SigV4 signature.

``POST /model/MODEL/invoke`` answers a JSON message and
``…/invoke-with-response-stream`` the same as an AWS event stream of
``chunk`` events (``{"bytes": base64(event)}``), but only for a request signed
(service ``bedrock``) with an access key whose secret ``secret_of`` knows, with
the body hash matching: the signature is recomputed here. Anything else is 403
in Bedrock's shape. Every request is recorded with its access key and status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from tests.fakes.anthropic_api import events, message
from tests.fakes.model_api import ApiHandler, RecordingApi

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), ?"
    r"SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]+)"
)


def signature_ok(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_of: Callable[[str], str | None],
) -> str | None:
    """The access key id when the request's SigV4 signature is right, else None."""
    m = _AUTH.fullmatch(headers.get("authorization", ""))
    if m is None:
        return None
    secret = secret_of(m["key"])
    date, region, service, term = m["scope"].split("/")
    if secret is None or service != "bedrock" or term != "aws4_request":
        return None
    payload = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload) != payload:
        return None
    names = m["signed"].split(";")
    if "host" not in names or any(n not in headers for n in names):
        return None
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    amz_date = headers.get("x-amz-date", "")
    key = _derive(secret, date, region, service)
    # Non-S3 services sign the path URI-encoded twice; try once-encoded too (clients differ).
    once = "/".join(quote(seg, safe="-_.~") for seg in path.split("/"))
    twice = "/".join(quote(seg, safe="-_.~") for seg in once.split("/"))
    for uri in dict.fromkeys((twice, once, path)):
        canonical = "\n".join([method, uri, query, canonical_headers, m["signed"], payload])
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, m["scope"], hashlib.sha256(canonical.encode()).hexdigest()]
        )
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, m["sig"]):
            return m["key"]
    return None


def _derive(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def event_message(payload: bytes, headers: Mapping[str, str]) -> bytes:
    """One message of the AWS event stream encoding (string headers only)."""
    raw = b"".join(
        struct.pack("B", len(k)) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
        for k, v in headers.items()
    )
    total = 12 + len(raw) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
    return head + struct.pack(">I", zlib.crc32(head))


def _events(text: str) -> list[dict[str, Any]]:
    """The Messages API's stream, with the invocation metrics Bedrock adds to its last event."""
    answer = events(text)
    answer[-1]["amazon-bedrock-invocationMetrics"] = {"inputTokenCount": 1, "outputTokenCount": 1}
    return answer


class _Handler(ApiHandler):
    fake: FakeBedrockRuntime

    def do_POST(self) -> None:
        body = self.body()
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        key = signature_ok("POST", path, query, headers, body, self.fake.secret_of)
        if key is None:
            self.fake.record("POST", path, None, 403)
            self.send(
                403,
                b'{"message": "The request signature we calculated does not match the one you provided."}',
            )
            return
        if not path.startswith("/model/") or not path.endswith(("/invoke", "/invoke-with-response-stream")):
            self.fake.record("POST", path, key, 404)
            self.send(404, b'{"message": "not found"}')
            return
        self.fake.record("POST", path, key, 200)
        if path.endswith("/invoke"):
            self.send(200, json.dumps(message(self.fake.reply)).encode())
            return
        chunks = []
        for event in _events(self.fake.reply):
            payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
            chunks.append(
                event_message(
                    payload,
                    {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
                )
            )
        self.send(200, b"".join(chunks), "application/vnd.amazon.eventstream")


class FakeBedrockRuntime(RecordingApi):
    Handler = _Handler
    name = "fake-bedrock"

    def __init__(self, secret_of: Callable[[str], str | None], reply: str = "pong from bedrock") -> None:
        super().__init__(reply)
        self.secret_of = secret_of

    @property
    def url(self) -> str:
        """What ``ANTHROPIC_BEDROCK_BASE_URL`` takes."""
        return self.root
