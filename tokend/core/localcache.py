"""Daemonless cross-process cache: one file per profile in the runtime dir.

aws-vault's pattern: check the cache, take the profile's lock, check again,
fetch, write atomically (temp file, fsync, rename; mode 0600), release. Fifty
concurrent ``tokend get --no-daemon`` calls for a profile make one fetch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable

from filelock import Timeout

from tokend.client.rundir import prepare_dir
from tokend.core import atomicfile
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.errors import SourceTimeout
from tokend.core.locks import private_lock

FORMAT_VERSION = 1


class LocalCache:
    def __init__(
        self, directory: str, *, lock_timeout: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self.lock_timeout = lock_timeout
        self.clock = clock
        prepare_dir(directory)

    def _key(self, profile: Profile) -> str:
        # Hashed names: profile names never appear in the file system, and a
        # changed profile (new fingerprint) never reads its old credential.
        digest = hashlib.sha256(f"{os.getuid()}:{profile.fingerprint}".encode()).hexdigest()
        return os.path.join(self.directory, digest[:40])

    def load(self, profile: Profile) -> Credential | None:
        try:
            with open(self._key(profile) + ".json", encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("v") != FORMAT_VERSION:
                return None
            return Credential(
                kind=doc["kind"],
                fields=doc["fields"],
                expires_at=doc["expires_at"],
                refresh_at=doc["refresh_at"],
                source=doc["source"],
                issued_at=doc["issued_at"],
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing or damaged (even valid JSON of another shape): fetch again

    def forget(self, profile: Profile) -> None:
        """Remove the cached credential of ``profile`` (its secret was replaced or deleted)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._key(profile) + ".json")

    def save(self, profile: Profile, cred: Credential) -> None:
        doc = {
            "v": FORMAT_VERSION,
            "kind": cred.kind,
            "fields": dict(cred.fields),
            "expires_at": cred.expires_at,
            "refresh_at": cred.refresh_at,
            "source": cred.source,
            "issued_at": cred.issued_at,
        }
        atomicfile.write_text(
            self._key(profile) + ".json",
            json.dumps(doc),
            mode=0o600,
            follow_symlinks=False,
            dir_mode=None,  # made (and checked) by prepare_dir
            prefix=".tmp-",
        )

    def fetch_through(
        self,
        profile: Profile,
        fetch: Callable[[], Credential],
        *,
        usable: Callable[[Credential], bool],
        forced: bool,
    ) -> Credential:
        lock = private_lock(self._key(profile) + ".lock")
        try:
            with lock.acquire(timeout=min(self.lock_timeout, profile.timeout * 2)):
                cached = self.load(profile)
                # Double check: another process may have fetched while we waited.
                # A forced refresh takes it only if it is newer than the rate limit.
                if (
                    cached is not None
                    and usable(cached)
                    and (not forced or self.clock() - cached.issued_at < profile.refresh_limit)
                ):
                    return cached
                cred = fetch()
                self.save(profile, cred)
                return cred
        except Timeout:
            raise SourceTimeout(
                "another process holds the fetch lock for this profile too long", profile=profile.name
            ) from None
