"""``docker-credential-tokend get|list|store|erase|version``: docker's credential helper protocol.

``get`` reads a registry (server URL) on stdin and prints
``{"ServerURL", "Username", "Secret"}`` for the profile ``[hosts]`` maps it to.
As docker-credential-helpers do, errors go to STDOUT with exit status 1, and an
unknown registry answers exactly ``credentials not found in native keychain``
(docker then carries on without credentials). ``list`` shows the mapped
registries and their usernames (no secret is fetched). ``store`` accepts what
docker hands over for a mapped registry and keeps nothing (tokend's sources
are the truth); ``erase`` asks tokend for a new credential, rate-limited.
"""

from __future__ import annotations

import json
import sys

from tokend import __version__
from tokend.client import helperlib, hosts

NOT_FOUND = "credentials not found in native keychain"
USAGE = "usage: docker-credential-tokend get|list|store|erase|version"
MAX_INPUT = 64 * 1024


class Failed(Exception):
    """An answer on stdout with exit status 1 (the helper protocol's error)."""


def _route(server: str) -> hosts.Route:
    if not server.strip():
        raise Failed("no server URL on stdin")
    route = helperlib.route_for(server)
    if route is None:
        raise Failed(NOT_FOUND)
    return route


def run(op: str, data: str) -> str:
    """What to print for ``op`` given stdin ``data``; Failed for an error answer."""
    try:
        if op == "get":
            server = data.strip()
            route = _route(server)
            got = helperlib.login(route.profile, route, server)
            return json.dumps({"ServerURL": server, "Username": got.username, "Secret": got.password}) + "\n"
        if op == "list":
            routes = helperlib.load_routes()
            listed = {
                key: route.username or hosts.default_username(key)
                for key, route in routes.items()
                if not key.startswith("*.")
            }
            return json.dumps(listed) + "\n"
        if op == "store":
            try:
                server = str(json.loads(data).get("ServerURL") or "")
            except (ValueError, AttributeError):
                raise Failed("store: expected JSON with ServerURL, Username and Secret") from None
            if helperlib.route_for(server) is None:
                raise Failed(
                    f"tokend does not store credentials: map {hosts.normalize(server)} to a profile "
                    "in the [hosts] table of the tokend config"
                )
            return ""
        if op == "erase":
            server = data.strip()
            route = _route(server)
            helperlib.login(route.profile, route, server, refresh=True)
            return ""
        if op == "version":
            return f"docker-credential-tokend (tokend) {__version__}\n"
    except helperlib.HelperError as e:
        raise Failed(e.line) from None
    raise Failed(f"unknown operation {op!r} ({USAGE})")


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 1:
        sys.stdout.write(USAGE + "\n")
        sys.exit(1)
    data = "" if args[0] in ("list", "version") else sys.stdin.read(MAX_INPUT)
    try:
        out = run(args[0], data)
    except Failed as e:
        sys.stdout.write(str(e) + "\n")
        sys.stdout.flush()
        sys.exit(1)
    sys.stdout.write(out)
    sys.stdout.flush()
