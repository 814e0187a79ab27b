"""Per-user lock files: created 0600 before filelock opens them."""

from __future__ import annotations

import os

from filelock import FileLock


def private_lock(path: str) -> FileLock:
    """A FileLock on ``path`` whose file only its owner can open.

    The file is created here rather than through filelock's ``mode=``, which
    filelock before 3.10 (Debian 12's python3-filelock) does not accept.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    return FileLock(path)
