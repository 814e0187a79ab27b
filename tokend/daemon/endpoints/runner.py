"""Endpoint servers on an event loop in a background thread, for as long as ``tokend exec``'s command runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence

from tokend.daemon.endpoints.http import EndpointServer

START_TIMEOUT = 10.0


@contextlib.contextmanager
def serving(servers: Sequence[EndpointServer]) -> Iterator[None]:
    """Serve ``servers`` (their ports are set on entry) until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failed: list[BaseException] = []
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            for server in servers:
                await server.start()
        except BaseException as e:
            failed.append(e)
            ready.set()
            return
        ready.set()
        await stop.wait()
        for server in servers:
            await server.close()
        # Connections still open (an idle keep-alive, a client waiting on a fetch)
        # end with CMD: the token and port must not outlive it.
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="tokend-endpoints", daemon=True
    )
    thread.start()
    if not ready.wait(START_TIMEOUT) or failed:
        raise RuntimeError(f"credential endpoints did not start: {failed[0] if failed else 'timeout'}")
    try:
        yield
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        if not thread.is_alive():
            loop.close()
