"""``docker-credential-tokend get|list|store|erase|version``: docker's credential helper protocol.

``get`` reads a registry (server URL) on stdin and prints
``{"ServerURL", "Username", "Secret"}`` for the profile ``[hosts]`` maps it to.
As docker-credential-helpers do, errors go to STDOUT with exit status 1, and an
unknown registry answers exactly ``credentials not found in native keychain``
(docker then carries on without credentials). ``list`` shows the mapped
registries and their usernames (no secret is fetched). ``store`` accepts what
docker hands over for a mapped registry and keeps nothing (tokend's sources
are the truth); ``erase`` asks tokend for a new credential, rate-limited.

With a daemon, ``get`` and ``erase`` are one ``helper`` request whose answer
is printed as it comes (tokend.client.helpercall): the daemon matches
``[hosts]`` and renders the JSON. Daemonless, and for the other verbs,
``run`` works it out here.
"""

import sys
import time

from tokend import __version__
from tokend.client import fastpath, helpercall

TYPE_CHECKING = False  # typing costs milliseconds to import on this hot path
if TYPE_CHECKING:
    from tokend.client import hosts

NOT_FOUND = "credentials not found in native keychain"
USAGE = "usage: docker-credential-tokend get|list|store|erase|version"
MAX_INPUT = 64 * 1024


class Failed(Exception):
    """An answer on stdout with exit status 1 (the helper protocol's error)."""


def _route(server: str, daemon: bool) -> "hosts.Route":
    from tokend.client import helperlib

    if not server.strip():
        raise Failed("no server URL on stdin")
    route = helperlib.route_for(server, daemon=daemon)
    if route is None:
        raise Failed(NOT_FOUND)
    return route


def ask(op: str, data: str) -> tuple[int, str]:
    """The exit status and stdout for ``op``: the daemon's answer to get and erase, else ``run``'s."""
    server = data.strip()
    deadline = None
    if op in ("get", "erase") and server:
        fields = {"format": "docker-credential", "host": server}
        if op == "erase":
            fields["refresh"] = "1"
        try:
            timeout = fastpath.timeout_from_env()
            deadline = time.monotonic() + timeout
            got = helpercall.ask(fields, deadline, timeout)
            if got is not None:
                return (0 if got[0] == 0 else 1), got[1].decode("utf-8", "replace")
            daemon = False
        except fastpath.Fail as f:
            return 1, f.line + "\n"
        except helpercall.OldDaemon:
            daemon = True
    else:
        daemon = True
    try:
        return 0, run(op, data, daemon=daemon, deadline=deadline)
    except Failed as e:
        return 1, str(e) + "\n"


def run(op: str, data: str, *, daemon: bool = True, deadline: float | None = None) -> str:
    """What to print for ``op`` given stdin ``data``, worked out here; Failed for an error answer.

    ``daemon=False``: read ``[hosts]`` from the file and fetch daemonless, by
    ``deadline`` (``time.monotonic()``) when given.
    """
    import json  # only here: the daemon renders get's answer

    from tokend.client import helperlib, hosts

    try:
        if op == "get":
            server = data.strip()
            route = _route(server, daemon)
            got = helperlib.login(route.profile, route, server, daemon=daemon, deadline=deadline)
            return json.dumps({"ServerURL": server, "Username": got.username, "Secret": got.password}) + "\n"
        if op == "list":
            routes = helperlib.load_routes(daemon=daemon)
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
            if helperlib.route_for(server, daemon=daemon) is None:
                raise Failed(
                    f"tokend does not store credentials: map {hosts.normalize(server)} to a profile "
                    "in the [hosts] table of the tokend config"
                )
            return ""
        if op == "erase":
            server = data.strip()
            route = _route(server, daemon)
            helperlib.login(route.profile, route, server, refresh=True, daemon=daemon, deadline=deadline)
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
    status, out = ask(args[0], data)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.exit(status)
