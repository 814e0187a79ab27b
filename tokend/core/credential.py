"""The immutable credential snapshot every source returns and every format renders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Credential kinds and the field that ``raw`` output prints for each.
KINDS: Mapping[str, str | None] = MappingProxyType(
    {
        "bearer": "token",
        "secret": "value",
        "basic": "password",
        "aws": None,  # no single printable value: use aws-process or env
    }
)

_REQUIRED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "bearer": ("token",),
        "secret": ("value",),
        "basic": ("username", "password"),
        "aws": ("AccessKeyId", "SecretAccessKey"),
    }
)

#: Fields that are identifiers, not secrets (everything else is redacted).
PUBLIC_FIELDS = frozenset({"username", "AccessKeyId", "token_type"})


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


@dataclass(frozen=True)
class Credential:
    """A credential as fetched: never refreshed in place, replaced whole.

    ``expires_at`` and ``refresh_at`` are POSIX timestamps (UTC); None means the
    credential does not expire / the source has no refresh hint.
    """

    kind: str
    fields: Mapping[str, str]
    expires_at: float | None = None
    refresh_at: float | None = None
    source: str = ""
    issued_at: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown credential kind {self.kind!r}")
        missing = [k for k in _REQUIRED[self.kind] if not self.fields.get(k)]
        if missing:
            raise ValueError(f"{self.kind} credential lacks {', '.join(missing)}")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @classmethod
    def bearer(cls, token: str, **kw: Any) -> Credential:
        return cls(kind="bearer", fields={"token": token}, **kw)

    @classmethod
    def secret(cls, value: str, **kw: Any) -> Credential:
        return cls(kind="secret", fields={"value": value}, **kw)

    @property
    def primary(self) -> str | None:
        """The single value ``raw`` prints, or None for multi-part kinds."""
        name = KINDS[self.kind]
        return self.fields[name] if name else None

    def secret_values(self) -> list[str]:
        """Every value that must never appear in a log line or error message."""
        return [v for k, v in self.fields.items() if k not in PUBLIC_FIELDS and v]

    def remaining(self, now: float) -> float | None:
        return None if self.expires_at is None else self.expires_at - now

    def expires_iso(self) -> str | None:
        if self.expires_at is None:
            return None
        return utc(self.expires_at).isoformat(timespec="seconds").replace("+00:00", "Z")

    def __repr__(self) -> str:  # never show field values
        return (
            f"Credential(kind={self.kind!r}, fields=<{', '.join(self.fields)}>, "
            f"expires_at={self.expires_iso()!r}, source={self.source!r})"
        )
