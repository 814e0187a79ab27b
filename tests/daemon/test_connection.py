"""The daemon's per-connection protocol: answers, errors, half-closed clients."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future

import pytest

from tokend.client import protocol
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.credential import Credential
from tokend.daemon.server import Connection, Daemon, Limits

CONFIG = config.parse(textwrap.dedent('[profiles.demo]\nsource = "demo"\nlatency = "0s"\n'), None)
INTERNAL = (1, b"tokend: internal error in the daemon; see its log\n")


class ExplodingBroker(Broker):
    """A real broker whose fetch future fails with a plain RuntimeError (a bug, not a TokendError)."""

    def lookup(self, name: str, *, min_ttl: float | None = None, force: bool = False) -> Future[Credential]:
        self.profile(name)
        fut: Future[Credential] = Future()
        fut.set_exception(RuntimeError("a bug deep in a source"))
        return fut


Client = Callable[[str], Awaitable[object]]


def _serve(broker: Broker, client: Client, limits: Limits | None = None) -> object:
    """Run a daemon's connections on a private socket while ``client(path)`` talks to it."""

    async def main() -> object:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s")
            daemon = Daemon(
                broker,
                reload_config=lambda: CONFIG,
                request_stop=lambda: None,
                socket_path=path,
                limits=limits or Limits(),
            )
            server = await asyncio.get_running_loop().create_unix_server(lambda: Connection(daemon), path)
            try:
                return await client(path)
            finally:
                server.close()
                await server.wait_closed()

    try:
        return asyncio.run(main())
    finally:
        broker.close()


async def _read_replies(reader: asyncio.StreamReader, replies: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for _ in range(replies):
        try:
            header = await asyncio.wait_for(reader.readline(), 10)
        except asyncio.TimeoutError:
            break  # the connection stays busy: what came so far is compared
        if not header:
            break
        status, length = header.split()
        out.append((int(status), await reader.readexactly(int(length))))
    return out


def test_exception_from_an_awaited_fetch_answers_and_frees_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def client(path: str) -> list[tuple[int, bytes]]:
        reader, writer = await asyncio.open_unix_connection(path)
        # Two failing gets, then a ping: all on one connection, all answered.
        writer.write(protocol.encode_request("get", {"profile": "demo"}) * 2 + b"ping\n")
        replies = await _read_replies(reader, 3)
        writer.close()
        return replies

    with caplog.at_level(logging.ERROR):
        replies = _serve(ExplodingBroker(CONFIG), client)
    assert replies == [INTERNAL, INTERNAL, (0, b"pong\n")]
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "a bug deep in a source" in str(logged[0].exc_info[1])


def test_an_error_line_stays_one_line_whatever_the_request_held() -> None:
    async def client(path: str) -> list[tuple[int, bytes]]:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(protocol.encode_request("get", {"profile": "demo\nforged\x1b[2K", "format": "b\r\x07"}))
        writer.write(protocol.encode_request("get", {"profile": "demo", "format": "b\r\x07"}))
        replies = await _read_replies(reader, 2)
        writer.close()
        return replies

    replies = _serve(Broker(CONFIG), client)
    assert len(replies) == 2
    for status, body in replies:
        assert status == 2
        assert body.startswith(b"tokend: ") and body.endswith(b"\n")
        assert len(body.splitlines()) == 1, body
        assert not [c for c in body[:-1] if c < 0x20 and c != 0x09], body


def test_a_half_closed_client_with_an_unfinished_request_is_answered_and_let_go() -> None:
    async def client(path: str) -> tuple[list[tuple[int, bytes]], bytes, float]:
        reader, writer = await asyncio.open_unix_connection(path)
        start = time.monotonic()
        writer.write(b"ping\npin")  # the second request never ends: only EOF can tell
        writer.write_eof()
        replies = await _read_replies(reader, 1)
        rest = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return replies, rest, time.monotonic() - start

    # A request timeout far above the wait below: EOF alone must end the connection.
    replies, rest, took = _serve(Broker(CONFIG), client, Limits(request_timeout=120))  # type: ignore[misc]
    assert replies == [(0, b"pong\n")]
    assert rest == b""
    assert took < 20
