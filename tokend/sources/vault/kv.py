"""Why a KV read under ``mount`` failed when the mount itself is the problem.

A KV v2 path read on a v1 mount (or the reverse), or a mount that does not
exist, answers 404 or 403 like a missing secret. ``sys/internal/ui/mounts``
(readable for any mount the token has some access to) says what the mount
is, so the error can name the setting to change.
"""

from __future__ import annotations

from tokend.core.errors import TokendError
from tokend.sources.vault.http import VaultClient, VaultHttpError


def mount_mismatch(client: VaultClient, token: str, mount: str, kv_version: int) -> str | None:
    """What is wrong with ``mount`` for a KV v``kv_version`` read, or None (nothing known)."""
    try:
        doc = client.call("GET", f"sys/internal/ui/mounts/{mount}", token=token)
    except VaultHttpError:
        return None  # no access to the mount's description: the first error stands
    except TokendError:
        return None
    data = doc.get("data")
    if not isinstance(data, dict):
        return None
    kind = str(data.get("type") or "")
    path = str(data.get("path") or "").strip("/")
    if path and path != mount:
        return f"no secrets engine is mounted at {mount}/ (it is a path inside {path}/; check mount)"
    if kind not in ("kv", "generic"):
        return f"{mount}/ is a {kind or 'non-KV'} secrets engine, not KV: unset mount, give the whole path"
    options = data.get("options")
    version = int(str(options.get("version") or 1)) if isinstance(options, dict) else 1
    if version != kv_version:
        return f"{mount}/ is a KV v{version} mount: set kv_version = {version}"
    return None
