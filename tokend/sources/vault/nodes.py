"""The Vault nodes a profile lists, in order, and the one that answered last.

A cluster is listed as ``address = ["https://a:8200", "https://b:8200", ...]``.
Requests start at the node that answered the previous one (after a failover,
the survivor that served it) and walk the list from there. A redirect is
followed only to a listed node: the token must never go anywhere else.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokend.core.errors import ConfigError, SourceError, SourceTimeout

if TYPE_CHECKING:
    from tokend.sources.vault.http import VaultHttpError

SCHEMES = ("https://", "http://")
DEFAULT_PORTS = {"https": 443, "http": 80}


def addresses_of(value: object, where: str) -> tuple[str, ...]:
    """The node addresses of an ``address`` setting (a string or a list of them); ConfigError if bad."""
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not items:
        raise ConfigError(f"{where}: expected https://HOST:PORT or a list of them, got {value!r}")
    seen: set[tuple[str, str, int]] = set()
    out = []
    for item in items:
        address = str(item).strip().rstrip("/")
        key = origin(address) if address.startswith(SCHEMES) else None
        if key is None:
            raise ConfigError(f"{where}: expected https://HOST:PORT, got {item!r}")
        if key in seen:
            raise ConfigError(f"{where}: {item!r} is listed twice")
        seen.add(key)
        out.append(address)
    return tuple(out)


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of ``url``, the default port filled in; None when it has no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


class Nodes:
    """The listed addresses and which to try first; shared by one profile's fetches."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise ValueError("no Vault address")
        self.addresses = tuple(a.rstrip("/") for a in addresses)
        self._first = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        """The node the next request starts at."""
        with self._lock:
            return self.addresses[self._first]

    def order(self) -> list[str]:
        """Every listed node, starting at the one that answered last, then in listed order."""
        with self._lock:
            first = self._first
        return [*self.addresses[first:], *self.addresses[:first]]

    def answered(self, address: str) -> None:
        """``address`` answered: start there next time."""
        with self._lock:
            self._first = self.addresses.index(address)

    def listed(self, url: str) -> str | None:
        """The listed node ``url`` points at (same scheme, host and port), or None."""
        target = origin(url)
        if target is None:
            return None
        for address in self.addresses:
            if origin(address) == target:
                return address
        return None


# -- walking the nodes ----------------------------------------------------------------------

#: Statuses with which a node sends the request elsewhere (a standby naming the active node).
REDIRECTS = (301, 302, 303, 307, 308)
#: The least time an attempt at one node gets (unless less is left of the deadline).
MIN_ATTEMPT = 2.0
#: While the cluster elects a new active node: the first pause before walking the nodes
#: again, doubled up to the second figure (an election takes a second or two).
ELECTION_PAUSE = 0.25
ELECTION_PAUSE_MAX = 2.0
#: What standbys say while no node is active (OpenBao 2.x, Vault).
NO_ACTIVE_NODE = ("active cluster node not found", "local node not active")


def short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Failure(Exception):
    """One node that did not serve a request, and what it said (``note``, or its HTTP error)."""

    def __init__(
        self,
        address: str,
        note: str,
        *,
        http: VaultHttpError | None = None,
        timeout: bool = False,
        tls: bool = False,
        unlisted: str | None = None,
        redirect: bool = False,
        unreachable: str = "",
        dead_end: bool = False,
    ) -> None:
        super().__init__(note)
        self.address = address
        self.note = note
        self.http = http
        self.timeout = timeout
        self.tls = tls
        self.unlisted = unlisted
        self.unreachable = unreachable  # the connection error's name
        self.redirect = redirect  # sent on to another listed node: not a failure by itself
        self.dead_end = dead_end  # redirected to a listed node that already failed: the dead active one

    @property
    def sealed(self) -> bool:
        return self.http is not None and self.http.sealed

    @property
    def electing(self) -> bool:
        """The node says the cluster has no active node for now: worth asking again shortly."""
        if self.dead_end:
            return True
        errors = self.http.errors if self.http is not None else ""
        return any(sign in errors for sign in NO_ACTIVE_NODE)

    def describe(self) -> str:
        if self.sealed:
            return f"Vault is sealed at {self.address}"
        if self.http is not None:
            return f"{self.address}: HTTP {self.http.status} {self.http.errors or 'with no error details'}"
        return f"{self.address}: {self.note}"


def all_failed(tried: Sequence[Failure], untried: Sequence[str], timeout: float) -> Exception:
    """The error for a request no node served: one line naming each address tried and its answer."""
    if not tried:
        where = untried[0] if untried else "its address"
        return SourceTimeout(f"Vault at {where} did not answer within {timeout:g}s")
    if len(tried) == 1 and not untried:
        return _alone(tried[0], timeout)
    if not untried and all(f.sealed for f in tried):
        return SourceError(f"Vault is sealed at {', '.join(f.address for f in tried)}")
    parts = [f.describe() for f in tried]
    if untried:
        parts.append(f"no time left to try {', '.join(untried)}")
    message = f"no Vault node could answer: {'; '.join(parts)}"
    if untried or all(f.timeout for f in tried):
        return SourceTimeout(message)
    return SourceError(message, retryable=not all(f.tls for f in tried))


def _alone(failure: Failure, timeout: float) -> Exception:
    """The error of the only node tried, as a single-node Vault has always reported it."""
    address = failure.address
    if failure.http is not None:
        return failure.http
    if failure.timeout:
        return SourceTimeout(f"Vault at {address} did not answer within {timeout:g}s")
    if failure.tls:
        return SourceError(
            f"TLS to Vault at {address} failed (certificate not trusted? set ca_bundle)", retryable=False
        )
    if failure.unlisted is not None:
        return SourceError(
            f"Vault at {address} redirected to {short(failure.unlisted)}, which is not listed in address: "
            "refused (list every node of the cluster in address)"
        )
    return SourceError(f"cannot reach Vault at {address}: {failure.unreachable or failure.note}")
