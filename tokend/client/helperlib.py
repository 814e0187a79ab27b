"""What the git and docker credential helpers share: the ``[hosts]`` route and one credential.

The helpers ask a running daemon for their whole answer (tokend.client.helpercall)
and import this only when they must work it out themselves: daemonless (CI, or
no daemon could start; ``daemon=False`` below), or with a daemon too old for
that request. Stdlib only. The routes come from the running
daemon (a ``routes`` request: the daemon has the config parsed already), else
straight from the config file's ``[hosts]`` table (``tokend.core.config``
validates the same table with the same rules from ``tokend.client.hosts``;
importing tomllib and parsing costs about 20 ms, twice the rest of a call).
The credential comes from the daemon through the fast path's protocol client,
autostart and daemonless fallback included (``tokend get --no-daemon`` in a
child, whose output is read here).
"""

from __future__ import annotations

import collections
import json
import sys
import time

from tokend.client import fastpath, hosts, paths, protocol, trust

TYPE_CHECKING = False  # typing (and calendar) cost milliseconds to import on this hot path
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    class Login(NamedTuple):
        username: str
        password: str
        expires_at: int | None  # POSIX seconds

else:
    Login = collections.namedtuple("Login", "username password expires_at")


CONTROL_CHARACTER = "the credential contains a control character (a newline, tab or NUL): refused"


class HelperError(Exception):
    """One line for the consumer (git: stderr; docker: stdout) and an exit status."""

    def __init__(self, line: str, status: int = fastpath.EXIT_FAILED) -> None:
        super().__init__(line)
        self.line = line
        self.status = status


def load_routes(path: str | None = None, *, daemon: bool = True) -> dict[str, hosts.Route]:
    """The ``[hosts]`` table (the daemon's, else ``path``'s); empty when there is no config."""
    if path is None and daemon and not fastpath.no_daemon():
        routes = daemon_routes()
        if routes is not None:
            return routes
    return file_routes(path)


def daemon_routes() -> dict[str, hosts.Route] | None:
    """The running daemon's ``[hosts]``; None when no daemon of ours answers with them.

    Nothing is started here: without a daemon the file is read, and the
    credential request that follows starts one.
    """
    try:
        timeout = fastpath.timeout_from_env()
        rundir = paths.runtime_dir(fastpath.getenv)
        sock_path = rundir + "/" + paths.SOCKET_NAME
        if len(sock_path.encode()) > paths.MAX_SOCKET_PATH or not fastpath.trusted_dir(rundir):
            return None
        status, body = protocol.call(sock_path, protocol.encode_request("routes", {}), timeout)
        doc = json.loads(body) if status == 0 else None
    # Any failure here is said again, better, by the credential request (or the
    # file read) that follows: an older daemon answers "pong" to an unknown op.
    except (fastpath.Fail, trust.Refused, protocol.NoAnswer, protocol.ProtocolError, OSError, ValueError):
        return None
    table = doc.get("routes") if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        return None
    routes = {}
    for key, value in table.items():
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
            return None
        routes[key] = hosts.Route(value[0], value[1] if isinstance(value[1], str) else None)
    return routes


def file_routes(path: str | None = None) -> dict[str, hosts.Route]:
    """The config file's ``[hosts]`` table; empty when there is no config."""
    path = path or paths.config_path()
    try:
        data = trust.read_config(path)
    except FileNotFoundError:
        return {}
    except trust.Refused as e:
        raise HelperError("tokend: " + e.line, 2) from None
    except OSError as e:
        raise HelperError(f"tokend: {path}: cannot read config: {e.strerror}", 2) from None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        table = tomllib.loads(data.decode("utf-8")).get("hosts", {})
    except (ValueError, UnicodeDecodeError) as e:
        raise HelperError(f"tokend: {path}: invalid TOML: {e}", 2) from None
    if not isinstance(table, dict):
        raise HelperError(f"tokend: {path}: hosts: expected a table", 2)
    routes = {}
    for key, value in table.items():
        why = hosts.check_pattern(key)
        try:
            if why:
                raise ValueError(why)
            routes[key] = hosts.parse_route(value)
        except ValueError as e:
            raise HelperError(f"tokend: {path}: hosts.{json.dumps(key)}: {e}", 2) from None
    return routes


def route_for(host: str, path: str | None = None, *, daemon: bool = True) -> hosts.Route | None:
    return hosts.match(load_routes(path, daemon=daemon), host)


def credential(
    profile: str, *, refresh: bool = False, daemon: bool = True, deadline: float | None = None
) -> dict[str, Any]:
    """The credential of ``profile`` as ``--format json`` gives it; HelperError on failure.

    ``daemon=False``: fetched daemonless at once (no daemon answered the helper's request).
    ``deadline`` (``time.monotonic()``): what is left of the helper's time, else TOKEND_TIMEOUT.
    """
    fields = {"profile": profile, "format": "json"}
    if refresh:
        fields["refresh"] = "1"
    try:
        if deadline is None:
            deadline = time.monotonic() + fastpath.timeout_from_env()
        timeout = max(deadline - time.monotonic(), 0.001)
        if not daemon or fastpath.no_daemon():
            status, body = _daemonless(fields, deadline)
        else:
            status, body = fastpath.ask(fields, timeout, _daemonless)
    except fastpath.Fail as f:
        raise HelperError(f.line, f.status) from None
    if status != 0:
        raise HelperError(body.decode("utf-8", "replace").strip(), status)
    try:
        doc = json.loads(body)
    except ValueError:
        raise HelperError(f"tokend: {profile}: unreadable answer from tokend") from None
    if not isinstance(doc, dict):
        raise HelperError(f"tokend: {profile}: unreadable answer from tokend")
    return doc


def _daemonless(fields: dict[str, str], deadline: float) -> tuple[int, bytes]:
    """``tokend get --no-daemon`` in a child (tokend-print execs it; a helper must reshape its output)."""
    import subprocess  # only here: it costs milliseconds to import

    left = max(deadline - time.monotonic(), 0.1)
    argv = fastpath.daemonless_argv(fields, deadline)
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=left + 2.0, check=False
        )
    except subprocess.TimeoutExpired:
        return fastpath.EXIT_FAILED, f"tokend: {fields['profile']}: no credential in time".encode()
    except OSError as e:
        return fastpath.EXIT_FAILED, f"tokend: cannot run tokend: {e}".encode()
    return done.returncode, done.stdout if done.returncode == 0 else done.stderr


def login(
    profile: str,
    route: hosts.Route,
    host: str,
    *,
    refresh: bool = False,
    daemon: bool = True,
    deadline: float | None = None,
) -> Login:
    """Username and password for ``host`` from ``profile``'s credential (``credential``'s options)."""
    doc = credential(profile, refresh=refresh, daemon=daemon, deadline=deadline)
    kind = doc.get("kind")
    if kind == "basic":
        username, password = route.username or doc.get("username"), doc.get("password")
    elif kind in ("bearer", "secret"):
        username, password = route.username or hosts.default_username(host), doc.get("token")
    else:
        raise HelperError(
            f"tokend: {profile}: gives {kind} credentials, not a token or a password"
            + (' (for ECR set token = "ecr")' if kind == "aws" else "")
        )
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        raise HelperError(f"tokend: {profile}: the credential has no usable password")
    # git's protocol is key=value lines: no control character is passed on (as the daemon's answer).
    if any(c < " " or c == "\x7f" for c in username + password):
        raise HelperError(f"tokend: {profile}: {CONTROL_CHARACTER}")
    return Login(username, password, _epoch(doc.get("expires_at")))


def _epoch(stamp: object) -> int | None:
    """``2026-11-24T13:00:00Z`` (what ``--format json`` gives) as POSIX seconds."""
    if not isinstance(stamp, str) or len(stamp) != 20 or stamp[10] != "T" or stamp[19] != "Z":
        return None
    try:
        y, m, d = int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10])
        hh, mm, ss = int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19])
    except ValueError:
        return None
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss
