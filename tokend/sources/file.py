"""``source = "file"``: a secret read from a file (a mounted secret, a token file)."""

from __future__ import annotations

import os
from typing import ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import TokendError
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.refs import read_secret_file
from tokend.sources.static import TTL_OPTION, static_secret


class FileSource(BaseSource):
    name = "file"
    options: ClassVar[dict[str, Option]] = {
        "path": Option("str", required=True, help="file holding the secret"),
        "ttl": TTL_OPTION,
    }

    def fetch(self, request: FetchRequest) -> Credential:
        path = os.path.expanduser(self.settings["path"])
        try:
            value = read_secret_file(path, path)
        except TokendError as e:
            e.profile = self.profile
            raise
        return static_secret(value, now=self.clock(), ttl=self.settings["ttl"], source=self.name)
