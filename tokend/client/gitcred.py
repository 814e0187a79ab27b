"""``git-credential-tokend get|store|erase``: git's credential helper protocol.

git writes ``key=value`` lines (``protocol``, ``host``, ``path``, …) and a blank
line; for ``get`` the helper answers ``username``, ``password`` and
``password_expiry_utc`` (git 2.41+ drops a credential past that time) when
``[hosts]`` maps the host to a profile, and nothing otherwise, so git moves on
to its next helper. Only ``https`` is served. ``store`` has nothing to do
(tokend's sources are the truth); ``erase`` (git got a 401 with the password)
asks tokend for a new credential, rate-limited per profile like ``--refresh``.
Errors go to stderr as one line and never hold a secret.
"""

from __future__ import annotations

import sys

from tokend.client import helperlib

USAGE = "usage: git-credential-tokend get|store|erase (run by git: git config credential.helper ...)"
MAX_INPUT = 64 * 1024


def read_attributes(data: bytes) -> dict[str, str]:
    """git's ``key=value`` lines up to the first blank line (later keys win; ``key[]`` kept last)."""
    attrs: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = raw.rstrip("\r")
        if not line:
            break
        key, sep, value = line.partition("=")
        if sep:
            attrs[key] = value
    return attrs


def answer(op: str, attrs: dict[str, str]) -> str:
    """What to print for ``op``; HelperError when the mapped profile fails."""
    host = attrs.get("host", "")
    if attrs.get("protocol") != "https" or not host:
        return ""
    route = helperlib.route_for(host)
    if route is None:
        return ""
    if op == "erase":
        helperlib.login(route.profile, route, host, refresh=True)
        return ""
    if op != "get":
        return ""  # store, and verbs a later git may add
    got = helperlib.login(route.profile, route, host)
    lines = [f"username={got.username}", f"password={got.password}"]
    if got.expires_at is not None:
        lines.append(f"password_expiry_utc={got.expires_at}")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE + "\n")
        sys.exit(0 if args in (["-h"], ["--help"]) else 2)
    data = sys.stdin.buffer.read(MAX_INPUT)
    try:
        out = answer(args[0], read_attributes(data))
    except helperlib.HelperError as e:
        sys.stderr.write(e.line + "\n")
        sys.exit(e.status)
    sys.stdout.write(out)
    sys.stdout.flush()
