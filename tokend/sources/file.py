"""``source = "file"``: a secret read from a file (a mounted secret, a token file)."""

from __future__ import annotations

import os
import stat
from typing import ClassVar

from tokend.core.credential import Credential
from tokend.core.errors import SourceError, SourceUnavailable
from tokend.sources.base import BaseSource, FetchRequest, Option
from tokend.sources.static import TTL_OPTION, static_secret

MAX_SIZE = 1 << 20


class FileSource(BaseSource):
    name = "file"
    options: ClassVar[dict[str, Option]] = {
        "path": Option("str", required=True, help="file holding the secret"),
        "ttl": TTL_OPTION,
    }

    def fetch(self, request: FetchRequest) -> Credential:
        path = os.path.expanduser(self.settings["path"])
        try:
            # O_NONBLOCK: opening a FIFO with no writer would block this worker forever.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SourceUnavailable(f"{path}: no such file", profile=self.profile) from None
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror}", profile=self.profile) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SourceError(f"{path}: not a regular file", profile=self.profile, retryable=False)
            with open(fd, "rb", closefd=False) as f:
                data = f.read(MAX_SIZE + 1)
        except OSError as e:
            raise SourceError(f"{path}: {e.strerror}", profile=self.profile) from None
        finally:
            os.close(fd)
        if len(data) > MAX_SIZE:
            raise SourceError(f"{path}: larger than {MAX_SIZE} bytes", profile=self.profile, retryable=False)
        try:
            value = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SourceError(f"{path}: not UTF-8 text", profile=self.profile, retryable=False) from None
        if not value:
            raise SourceError(f"{path}: file is empty", profile=self.profile)
        return static_secret(value, now=self.clock(), ttl=self.settings["ttl"], source=self.name)
