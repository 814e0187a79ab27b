"""Where a sign-in's refresh token lives: the OS keychain, or this process's memory.

With ``CI=true`` or no usable keychain the token stays in memory only: a CI
job must not probe a keychain (it can hang on D-Bus) and nothing is written
to disk in clear. A rotated refresh token replaces the stored one before the
access token is served: providers that rotate revoke the whole grant when an
old refresh token is presented again.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from tokend import ci
from tokend.core.errors import REDACTOR

SERVICE = "tokend-oauth2"

_MEMORY: dict[str, str] = {}
_MEMORY_LOCK = threading.Lock()


def _keychain() -> Any | None:
    """The keyring module when a real keychain backs it; None in CI or without one."""
    if ci.active():
        return None
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


class RefreshStore:
    """The refresh token of one sign-in (``key``: the profile that signed in)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get(self) -> str | None:
        keyring = _keychain()
        if keyring is None:
            with _MEMORY_LOCK:
                return _MEMORY.get(self.key)
        try:
            value = keyring.get_password(SERVICE, self.key)
        except keyring.errors.KeyringError:
            value = None
        if value:
            REDACTOR.add([value])
        return value or None

    def put(self, token: str) -> None:
        REDACTOR.add([token])
        keyring = _keychain()
        if keyring is None:
            with _MEMORY_LOCK:
                _MEMORY[self.key] = token
            return
        keyring.set_password(SERVICE, self.key, token)

    def forget(self) -> None:
        with _MEMORY_LOCK:
            _MEMORY.pop(self.key, None)
        keyring = _keychain()
        if keyring is None:
            return
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            keyring.delete_password(SERVICE, self.key)
