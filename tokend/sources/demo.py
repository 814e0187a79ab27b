"""``source = "demo"``: a stand-in upstream so a fresh install shows the daemon at work.

Each fetch takes a moment, like a real token endpoint, and yields a new random
bearer token valid for ``lifetime``; later calls are served from the cache.
"""

from __future__ import annotations

import secrets
import time
from typing import ClassVar

from tokend.core.credential import Credential
from tokend.sources.base import BaseSource, FetchRequest, Option


class DemoSource(BaseSource):
    name = "demo"
    options: ClassVar[dict[str, Option]] = {
        "lifetime": Option("duration", default=3600.0, help="how long each demo token lives", lifetime=True),
        "latency": Option("duration", default=0.3, help="simulated upstream latency"),
    }

    def fetch(self, request: FetchRequest) -> Credential:
        time.sleep(min(self.settings["latency"], request.timeout))
        now = self.clock()
        return Credential.bearer(
            "demo-" + secrets.token_urlsafe(24),
            expires_at=now + self.settings["lifetime"],
            issued_at=now,
            source=self.name,
        )
