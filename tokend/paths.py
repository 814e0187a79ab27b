"""Where tokend keeps its runtime files. Stdlib only: the fast path imports it."""

from __future__ import annotations

import os

SOCKET_NAME = "tokend.sock"
#: sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def runtime_dir() -> str:
    """``$XDG_RUNTIME_DIR/tokend``, else a per-user directory under /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return os.path.join(base, "tokend")
    return f"/tmp/tokend-{os.getuid()}"


def socket_path() -> str:
    return os.path.join(runtime_dir(), SOCKET_NAME)


def log_path() -> str:
    return os.path.join(runtime_dir(), "tokend.log")
