"""``git-credential-tokend get|store|erase``: git's credential helper protocol.

git writes ``key=value`` lines (``protocol``, ``host``, ``path``, …) and a blank
line; for ``get`` the helper answers ``username``, ``password`` and
``password_expiry_utc`` (git 2.41+ drops a credential past that time) when
``[hosts]`` maps the host to a profile, and nothing otherwise, so git moves on
to its next helper. Only ``https`` is served. ``store`` has nothing to do
(tokend's sources are the truth); ``erase`` (git got a 401 with the password)
asks tokend for a new credential, rate-limited per profile like ``--refresh``.
Errors go to stderr as one line and never hold a secret.

With a daemon, the host goes to it in one ``helper`` request and its answer
is printed as it comes (tokend.client.helpercall): the daemon matches
``[hosts]`` and renders the lines, refusing a credential with a newline or
another control character in it. Daemonless, ``answer`` does the same here.
"""

import sys
import time

from tokend.client import fastpath, helpercall

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


def run(op: str, attrs: dict[str, str]) -> tuple[int, bytes]:
    """The exit status and what to print (stdout on 0, else the stderr line) for ``op``."""
    host = attrs.get("host", "")
    if op not in ("get", "erase") or attrs.get("protocol") != "https" or not host:
        return 0, b""  # store, verbs a later git may add, plain http: nothing to do
    fields = {"format": "git-credential", "host": host, "protocol": "https"}
    if op == "erase":
        fields["refresh"] = "1"
    daemon = False
    try:
        timeout = fastpath.timeout_from_env()
        deadline = time.monotonic() + timeout
        got = helpercall.ask(fields, deadline, timeout)
        if got is not None:
            return got
    except fastpath.Fail as f:
        return f.status, f.line.encode()
    except helpercall.OldDaemon:
        daemon = True
    from tokend.client import helperlib  # only daemonless: json, re and TOML cost milliseconds

    try:
        return 0, answer(op, attrs, daemon=daemon, deadline=deadline).encode()
    except helperlib.HelperError as e:
        return e.status, e.line.encode()


def answer(op: str, attrs: dict[str, str], *, daemon: bool = True, deadline: float | None = None) -> str:
    """What to print for ``op``, worked out here; HelperError when the mapped profile fails.

    ``daemon=False``: read ``[hosts]`` from the file and fetch daemonless, by
    ``deadline`` (``time.monotonic()``) when given.
    """
    from tokend.client import helperlib

    host = attrs.get("host", "")
    if attrs.get("protocol") != "https" or not host:
        return ""
    route = helperlib.route_for(host, daemon=daemon)
    if route is None:
        return ""
    if op == "erase":
        helperlib.login(route.profile, route, host, refresh=True, daemon=daemon, deadline=deadline)
        return ""
    if op != "get":
        return ""  # store, and verbs a later git may add
    got = helperlib.login(route.profile, route, host, daemon=daemon, deadline=deadline)
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
    status, out = run(args[0], read_attributes(data))
    if status != 0:
        sys.stderr.buffer.write(out.rstrip(b"\n") + b"\n")
        sys.stderr.flush()
        sys.exit(status)
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
