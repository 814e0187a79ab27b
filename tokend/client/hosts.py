"""The ``[hosts]`` table: which profile serves a git host or a container registry.

```toml
[hosts]
"github.com" = "gh"                                    # a profile name
"us-docker.pkg.dev" = "vertex"                         # Artifact Registry: an access token
"123456789012.dkr.ecr.us-east-1.amazonaws.com" = "ecr" # ECR: token = "ecr"
"*.example.com" = { profile = "corp", username = "ci" }
```

Keys are a host name with an optional port, or ``*.`` and a domain (any host
below it; the longest match wins, an exact key beats every wildcard). The
username sent with a bearer token defaults by host (``oauth2accesstoken`` for
Google registries, ``AWS`` for ECR, ``x-access-token`` for GitHub, …).

Stdlib only: the daemon matches hosts with it (tokend/daemon/helpers.py), and
the git and docker credential helpers when they run daemonless.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping

TYPE_CHECKING = False  # typing costs milliseconds to import in a daemonless helper
if TYPE_CHECKING:
    from typing import NamedTuple, TypeVar

    T = TypeVar("T")

    class Route(NamedTuple):
        profile: str
        username: str | None = None

else:
    Route = collections.namedtuple("Route", "profile username", defaults=(None,))

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*(:[0-9]{{1,5}})?")
_PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
DEFAULT_PORTS = (":443",)

#: (host or "*.domain", username) for bearer tokens when the route names none.
DEFAULT_USERNAMES: tuple[tuple[str, str], ...] = (
    ("*.pkg.dev", "oauth2accesstoken"),  # Artifact Registry
    ("gcr.io", "oauth2accesstoken"),
    ("*.gcr.io", "oauth2accesstoken"),
    ("source.developers.google.com", "oauth2accesstoken"),
    ("*.amazonaws.com", "AWS"),  # ECR (its token is for user AWS)
    ("*.azurecr.io", "00000000-0000-0000-0000-000000000000"),  # ACR token logins
    ("github.com", "x-access-token"),
    ("*.github.com", "x-access-token"),
    ("ghcr.io", "x-access-token"),
    ("*.ghe.com", "x-access-token"),
)
FALLBACK_USERNAME = "tokend"


def normalize(text: str) -> str:
    """``https://Registry.example:443/v2/`` -> ``registry.example``: lower-case host[:port]."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1].lower().rstrip(".")
    for port in DEFAULT_PORTS:
        host = host.removesuffix(port)
    return host


def check_pattern(key: str) -> str | None:
    """Why ``key`` is not a valid ``[hosts]`` key, or None."""
    if key != key.strip().lower() or not _HOST.fullmatch(key):
        return 'expected a lower-case host name, host:port, or "*." and a domain'
    return None


def parse_route(value: object) -> Route:
    """A ``[hosts]`` value: a profile name or ``{ profile = "...", username = "..." }`` (ValueError)."""
    profile: object
    username: object
    if isinstance(value, str):
        profile, username = value, None
    elif isinstance(value, Mapping):
        unknown = set(value) - {"profile", "username"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} (expected profile, username)")
        profile, username = value.get("profile"), value.get("username")
        if username is not None and (not isinstance(username, str) or not username or ":" in username):
            raise ValueError("username: expected a non-empty string without ':'")
    else:
        raise ValueError('expected a profile name or a table { profile = "...", username = "..." }')
    if not isinstance(profile, str) or not _PROFILE.fullmatch(profile):
        raise ValueError("expected the name of a profile")
    return Route(profile, username if isinstance(username, str) else None)


def match(routes: Mapping[str, T], host: str) -> T | None:
    """The value for ``host`` (normalized): its exact key, else the longest ``*.`` domain above it."""
    host = normalize(host)
    if host in routes:
        return routes[host]
    name = host.split(":", 1)[0]
    best: tuple[int, T] | None = None
    for key, value in routes.items():
        if key.startswith("*.") and name.endswith(key[1:]) and (best is None or len(key) > best[0]):
            best = (len(key), value)
    return None if best is None else best[1]


def default_username(host: str) -> str:
    found = match(dict(DEFAULT_USERNAMES), host)
    return found or FALLBACK_USERNAME
