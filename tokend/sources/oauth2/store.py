"""Where a sign-in's refresh token lives: the OS keychain, or this process's memory.

One entry per *identity*: the provider (``issuer``, else ``token_endpoint``)
and the ``client_id``. Every profile of that identity uses it, whatever its
grant, resource or scopes, so one ``tokend login`` serves them all. The
keychain entry's name is a hash of the identity (URLs do not make portable
keychain names). An older tokend stored the token under a profile's name: when
the identity's entry is missing, the first such entry of any profile of the
identity is moved there and the others are dropped, whichever profile is asked
for first.

With ``CI=true`` or no usable keychain the token stays in memory only: a CI
job must not probe a keychain (it can hang on D-Bus) and nothing is written
to disk in clear. A rotated refresh token replaces the stored one before the
access token is served: providers that rotate revoke the whole grant when an
old refresh token is presented again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tokend import ci
from tokend.core.errors import REDACTOR, SourceTimeout

SERVICE = "tokend-oauth2"

_MEMORY: dict[str, str] = {}
_MEMORY_LOCK = threading.Lock()
_REFRESH_LOCKS: dict[str, threading.Lock] = {}


def identity_of(options: Mapping[str, Any]) -> str:
    """Who signs in: the provider and the client (``oauth2 ISSUER CLIENT_ID``)."""
    provider = str(options.get("issuer") or options.get("token_endpoint") or "").rstrip("/")
    return f"oauth2 {provider} {options.get('client_id')}"


def key_of(identity: str) -> str:
    """The keychain user name of ``identity``'s entry."""
    return "identity-" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a refresh token (which reference value a rotation came from)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def refresh_lock(identity: str) -> threading.Lock:
    """The lock every refresh of ``identity`` in this process holds: two profiles must never
    present the same refresh token at once (a rotating provider would revoke the grant)."""
    with _MEMORY_LOCK:
        return _REFRESH_LOCKS.setdefault(identity, threading.Lock())


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


@dataclass(frozen=True)
class Stored:
    """A stored refresh token; ``origin``: the fingerprint of the configured refresh token it was
    rotated from (``grant = "refresh_token"``), None after a ``tokend login``."""

    token: str
    origin: str | None = None


def _decode(value: str | None) -> Stored | None:
    if not value:
        return None
    if not value.startswith("{"):
        return Stored(value)  # a bare token, as stored before origins were kept
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    token = doc.get("refresh_token") if isinstance(doc, dict) else None
    origin = doc.get("origin") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        return None
    return Stored(token, origin if isinstance(origin, str) else None)


class RefreshStore:
    """The refresh token of one identity.

    ``legacy``: the per-profile entries an older tokend used for it (the
    profile's name, or a function giving the names of all the identity's
    profiles, asked only when they are needed: on a miss and on forget).
    """

    def __init__(
        self, identity: str, *, legacy: str | Callable[[], Sequence[str]] | None = None
    ) -> None:
        self.identity = identity
        self.key = key_of(identity)
        self.legacy = legacy
        self.lock = refresh_lock(identity)

    def legacy_names(self) -> list[str]:
        if self.legacy is None:
            return []
        if isinstance(self.legacy, str):
            return [self.legacy]
        return [name for name in self.legacy() if name]

    @contextlib.contextmanager
    def refreshing(self, timeout: float) -> Iterator[None]:
        """Held while the refresh token is presented and its rotation stored.

        Threads of this process wait on the identity's lock; where the token is
        shared through the keychain, other processes (``tokend-print`` without a
        daemon, another profile's) wait on a lock file of the identity's in the
        runtime directory.
        """
        if not self.lock.acquire(timeout=max(timeout, 0.01)):
            raise SourceTimeout("another refresh of this sign-in took longer than the fetch's timeout")
        try:
            if _keychain() is None:
                yield
                return
            from filelock import Timeout

            from tokend.client import paths
            from tokend.client.rundir import prepare_dir
            from tokend.core.locks import private_lock

            rundir = paths.runtime_dir()
            prepare_dir(rundir)
            try:
                held = private_lock(os.path.join(rundir, f"oauth2-{self.key}.lock")).acquire(timeout=timeout)
            except Timeout:
                raise SourceTimeout(
                    "another process held this sign-in's refresh longer than the fetch's timeout"
                ) from None
            with held:
                yield
        finally:
            self.lock.release()

    def get(self) -> Stored | None:
        keyring = _keychain()
        if keyring is None:
            with _MEMORY_LOCK:
                found = _decode(_MEMORY.get(self.key))
        else:
            found = _decode(self._read(keyring, self.key))
            if found is None and self.legacy is not None:
                found = self._migrate(keyring, self.legacy_names())
        if found is not None:
            REDACTOR.add([found.token])
        return found

    def put(self, token: str, *, origin: str | None = None) -> None:
        REDACTOR.add([token])
        value = json.dumps({"refresh_token": token, "origin": origin})
        keyring = _keychain()
        if keyring is None:
            with _MEMORY_LOCK:
                _MEMORY[self.key] = value
            return
        keyring.set_password(SERVICE, self.key, value)

    def forget(self) -> None:
        with _MEMORY_LOCK:
            _MEMORY.pop(self.key, None)
        keyring = _keychain()
        if keyring is None:
            return
        for key in (self.key, *self.legacy_names()):
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(SERVICE, key)

    @staticmethod
    def _read(keyring: Any, key: str) -> str | None:
        try:
            value = keyring.get_password(SERVICE, key)
        except keyring.errors.KeyringError:
            return None
        return str(value) if value else None

    def _migrate(self, keyring: Any, names: Sequence[str]) -> Stored | None:
        """Move the first token stored under one of ``names`` to the identity's entry; drop the rest.

        One sign-in serves the identity now: a second profile's old token is an
        older sign-in of the same person and client, and presenting it later
        could make a rotating provider revoke the grant.
        """
        found: Stored | None = None
        for name in names:
            value = self._read(keyring, name)
            if value is None:
                continue
            if found is None and (found := _decode(value)) is not None:
                self.put(found.token, origin=found.origin)
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(SERVICE, name)
        return found
