"""Linux process controls through libc's prctl(2); quietly nothing where there is none."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


def _load() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    result: Callable[..., int] = fn
    return result


# Resolved once, at import: a child between fork and exec then only makes the call.
_PRCTL = _load()


def available() -> bool:
    """True when this platform has prctl(2)."""
    return _PRCTL is not None


def prctl(option: int, arg: int) -> bool:
    """``prctl(option, arg)``; False where there is no prctl or the call failed."""
    if _PRCTL is None:
        return False
    return _PRCTL(option, arg, 0, 0, 0) == 0
