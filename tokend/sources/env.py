"""``source = "env"``: a secret from the daemon's (or caller's) environment."""

from __future__ import annotations

import os
from typing import ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import SourceUnavailable
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.static import TTL_OPTION, static_secret


class EnvSource(BaseSource):
    name = "env"
    options: ClassVar[dict[str, Option]] = {
        "var": Option("str", required=True, help="name of the environment variable"),
        "ttl": TTL_OPTION,
    }

    def fetch(self, request: FetchRequest) -> Credential:
        var = self.settings["var"]
        value = os.environ.get(var, "").strip()
        if not value:
            raise SourceUnavailable(f"environment variable {var} is not set", profile=self.profile)
        return static_secret(value, now=self.clock(), ttl=self.settings["ttl"], source=self.name)
