"""Revocation in the daemon: ``tokend logout PROFILE`` and the ``revoke_on_stop`` profiles at a stop.

What a source holds upstream (a Vault lease, the token it logged in for) lives
in the daemon's instance of it, so the daemon revokes. Each revocation runs
in a daemon thread awaited with a bound: a hung upstream neither blocks the
event loop nor keeps the process alive at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from tokend.core.broker import Broker
from tokend.core.errors import SourceTimeout

#: The whole time a stop gives sources to revoke (``revoke_on_stop``): a hanging upstream
#: must not hang ``tokend stop`` (whose client waits longer, tokend/cli/control.py).
STOP_REVOKE_BUDGET = 4.0
#: Bound on ``tokend logout``'s revocation, whatever the profile's timeout.
MAX_REVOKE_TIME = 20.0

T = TypeVar("T")


async def revoke(broker: Broker, name: str, timeout: float) -> str:
    """Drop ``name``'s cache and revoke what its source holds; the line for ``tokend logout``."""
    try:
        done = await in_thread(lambda: broker.revoke(name, timeout), timeout + 1)
    except asyncio.TimeoutError:
        raise SourceTimeout(f"no answer within {timeout:g}s; not revoked", profile=name) from None
    if not done:
        return f"{name}: nothing held to revoke; cached credential dropped"
    return f"{name}: revoked {', '.join(done)}"


async def revoke_for_stop(broker: Broker) -> list[str]:
    """The ``revoke_on_stop`` profiles' revocations, STOP_REVOKE_BUDGET in all; what each said."""
    budget = STOP_REVOKE_BUDGET
    try:
        return await in_thread(lambda: broker.revoke_for_stop(budget), budget + 1)
    except asyncio.TimeoutError:
        return [f"revocation at stop did not finish within {budget:g}s"]


async def in_thread(fn: Callable[[], T], timeout: float) -> T:
    """``fn()`` in a daemon thread, awaited at most ``timeout`` s (asyncio.TimeoutError).

    Not the loop's executor: at exit the process would wait for a thread stuck on
    a hung upstream, and a stop must not.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = fn(), None
        except BaseException as e:  # handed to the awaiting coroutine
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="tokend-revoke", daemon=True).start()
    return await asyncio.wait_for(fut, timeout)
