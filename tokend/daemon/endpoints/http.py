"""The HTTP/1.1 server every credential endpoint shares, and its security checks.

asyncio rather than ``http.server``: the broker's request path hands back an
awaitable when a credential is being fetched, so one event loop thread serves
every connection (200 SDK clients waiting on one fetch cost 200 small
coroutines, not 200 threads), and the limits are plain counters and
``wait_for`` deadlines.

Before a handler sees a request: the connection's owner must be our uid
(``peer.peer_uid``), the connection cap must have room, the request head must
fit ``Limits.max_head`` and arrive within ``Limits.head_timeout``, the whole
connection must end by ``Limits.lifetime``, a body is refused (these are
read-only protocols; a small one is read and ignored), and the Host header
must be exactly ``127.0.0.1:PORT`` (a browser page on another name that
resolves to 127.0.0.1 — DNS rebinding — sends its own name).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from tokend.daemon.endpoints import peer

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Headers a request may carry once: the ones the checks read.
_SINGLE = frozenset(
    {"host", "authorization", "x-identity-header", "metadata-flavor", "content-length", "connection"}
)
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client may cost."""

    max_head: int = 8192  # request line and headers
    max_body: int = 4096  # read and ignored (google-auth may POST a small JSON)
    head_timeout: float = 10.0  # to send one request head (a keep-alive connection idles this long)
    lifetime: float = 60.0  # of one connection; clients reconnect
    connections: int = 512  # open at once


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]
#: The refusal in the cloud's own shape: ``refuse(status, message)``.
Refusal = Callable[[int, str], Response]


def plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8", dict(headers or {}))


class EndpointServer:
    """One endpoint on 127.0.0.1 and an ephemeral port, answering through ``handler``."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        refuse: Refusal,
        *,
        limits: Limits | None = None,
        uid: int | None = None,
    ) -> None:
        self.name = name
        self._handler = handler
        self._refuse = refuse
        self._limits = limits or Limits()
        self._uid = os.getuid() if uid is None else uid
        self._server: asyncio.Server | None = None
        self._open = 0
        self.port = 0
        self.requests = 0

    @property
    def host(self) -> str:
        """What clients must send as Host: the loopback address and our port."""
        return f"{HOST}:{self.port}"

    def set_handler(self, handler: Handler) -> None:
        """Answer later requests through ``handler`` (the daemon's after a reload)."""
        self._handler = handler

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on ``sock`` (already bound to 127.0.0.1), else on a new ephemeral port."""
        limit = self._limits.max_head
        if sock is not None:
            self._server = await asyncio.start_server(self._connection, sock=sock, limit=limit)
        else:
            self._server = await asyncio.start_server(self._connection, HOST, 0, limit=limit)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening (connections still open are the caller's to cancel)."""
        if self._server is not None:
            self._server.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > self._limits.connections:
                log.warning("%s endpoint: connection cap (%d) reached", self.name, self._limits.connections)
                await self._send(writer, self._refuse(503, "too many connections"), close=True)
                return
            local, remote = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
            owner = peer.peer_uid(local[:2], remote[:2])
            if owner != self._uid:
                log.warning("%s endpoint: refused a connection from uid %s", self.name, owner)
                await self._send(writer, self._refuse(403, "connection from another user"), close=True)
                return
            deadline = time.monotonic() + self._limits.lifetime
            while await self._one(reader, writer, deadline):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # the client went away, or sent its body too slowly
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float) -> bool:
        """Serve one request; whether the connection stays open for another."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), min(left, self._limits.head_timeout))
        except asyncio.TimeoutError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, self._refuse(431, "request head too large"), close=True)
            return False
        except asyncio.IncompleteReadError:
            return False
        request, version = _parse(head)
        if request is None:
            await self._send(writer, self._refuse(400, "malformed request"), close=True)
            return False
        length = request.headers.get("content-length", "0")
        if (
            not length.isdigit()
            or int(length) > self._limits.max_body
            or "transfer-encoding" in request.headers
        ):
            await self._send(writer, self._refuse(413, "request body not accepted"), close=True)
            return False
        if int(length):
            await asyncio.wait_for(reader.readexactly(int(length)), max(deadline - time.monotonic(), 0.01))
        keep = version == "HTTP/1.1" and request.headers.get("connection", "").lower() != "close"
        if request.headers.get("host") != self.host:
            await self._send(writer, self._refuse(403, "Host header is not " + self.host), close=True)
            return False
        self.requests += 1
        try:
            response = await asyncio.wait_for(self._handler(request), max(deadline - time.monotonic(), 0.01))
        except asyncio.TimeoutError:
            response = self._refuse(503, "no answer within the connection's deadline")
            keep = False
        except Exception as e:  # a handler bug answers 500 and is logged, the server goes on
            log.exception("%s endpoint: handler failed", self.name)
            response = self._refuse(500, f"tokend: endpoint error: {type(e).__name__}")
        await self._send(writer, response, close=not keep)
        return keep

    async def _send(self, writer: asyncio.StreamWriter, response: Response, *, close: bool) -> None:
        lines = [
            f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Error')}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Cache-Control: no-store",
            "Connection: " + ("close" if close else "keep-alive"),
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(writer.drain(), 5.0)


def _parse(head: bytes) -> tuple[Request | None, str]:
    try:
        text = head.decode("latin-1")
        first, *rest = text.split("\r\n")
        method, target, version = first.split(" ")
    except ValueError:
        return None, ""
    if not version.startswith("HTTP/1."):
        return None, version
    headers: dict[str, str] = {}
    for line in rest:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None, version
        key = name.lower()
        if key in headers:
            if key in _SINGLE:  # two Hosts or two tokens: which one was checked? Refuse.
                return None, version
            headers[key] += ", " + value.strip()
        else:
            headers[key] = value.strip()
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return Request(method, parts.path, query, headers), version
