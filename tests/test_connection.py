"""The daemon's per-connection protocol: an unexpected exception answers and frees the connection."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import textwrap
from concurrent.futures import Future

import pytest

from tokend.client import protocol
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.credential import Credential
from tokend.daemon.server import Connection, Daemon


class ExplodingBroker(Broker):
    """A real broker whose fetch future fails with a plain RuntimeError (a bug, not a TokendError)."""

    def lookup(self, name: str, *, min_ttl: float | None = None, force: bool = False) -> Future[Credential]:
        self.profile(name)
        fut: Future[Credential] = Future()
        fut.set_exception(RuntimeError("a bug deep in a source"))
        return fut


async def _exchange(path: str, request: bytes, replies: int) -> list[tuple[int, bytes]]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(request)
    out: list[tuple[int, bytes]] = []
    for _ in range(replies):
        try:
            header = await asyncio.wait_for(reader.readline(), 10)
        except asyncio.TimeoutError:
            break  # the connection stays busy: what came so far is compared
        status, length = header.split()
        out.append((int(status), await reader.readexactly(int(length))))
    writer.close()
    return out


def test_exception_from_an_awaited_fetch_answers_and_frees_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = config.parse(textwrap.dedent('[profiles.demo]\nsource = "demo"\n'), None)
    broker = ExplodingBroker(cfg)

    async def main() -> list[tuple[int, bytes]]:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s")
            daemon = Daemon(broker, reload_config=lambda: cfg, request_stop=lambda: None, socket_path=path)
            server = await asyncio.get_running_loop().create_unix_server(lambda: Connection(daemon), path)
            try:
                # Two failing gets, then a ping: all on one connection, all answered.
                request = protocol.encode_request("get", {"profile": "demo"}) * 2 + b"ping\n"
                return await _exchange(path, request, 3)
            finally:
                server.close()
                await server.wait_closed()

    with caplog.at_level(logging.ERROR):
        replies = asyncio.run(main())
    broker.close()
    internal = (1, b"tokend: internal error in the daemon; see its log\n")
    assert replies == [internal, internal, (0, b"pong\n")]
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "a bug deep in a source" in str(logged[0].exc_info[1])
