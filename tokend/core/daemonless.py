"""The one daemonless path: a broker of this process's own, for one deadline.

``tokend get --no-daemon``, ``tokend exec``/``env`` (CI) and the fast path's
fallback all fetch through it. Processes share credentials through the file
cache in the runtime directory (aws-vault's double-checked lock:
``tokend.core.localcache``), so fifty concurrent calls make one fetch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tokend.client import paths
from tokend.client.rundir import prepare_dir
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.localcache import LocalCache


@contextlib.contextmanager
def local_broker(timeout: float | None = None) -> Iterator[Broker]:
    """A broker on the user's config and the shared file cache; sources give up by ``timeout``."""
    cfg = config.load()
    rundir = paths.runtime_dir()
    prepare_dir(rundir)  # the same checks the daemon makes, before anything is written there
    cache = LocalCache(os.path.join(rundir, "cache"), lock_timeout=timeout or 60.0)
    broker = Broker(cfg, store=cache, max_fetch_timeout=timeout)
    try:
        yield broker
    finally:
        broker.close()
