"""The git and docker credential helpers' one request: the daemon renders their whole answer.

A helper sends what it read from its consumer and gets back exactly what to
print (tokend/daemon/helpers.py), so on its hot path it imports what
``tokend-print`` imports and nothing more: no json, no re, no config parsing.
The checks are tokend-print's own (``tokend.client.fastpath``): the runtime
directory must be ours and closed to others, the listener must run as our
uid, and a missing daemon is started once per herd. Without a daemon (CI, or
none could start) the helper does the work itself (``tokend.client.helperlib``,
imported only then).
"""

from tokend.client import fastpath, paths, protocol

OP = "helper"


class OldDaemon(Exception):
    """The daemon predates the ``helper`` request: ask it the old way (routes, then get)."""


def ask(fields: dict[str, str], deadline: float, timeout: float) -> "tuple[int, bytes] | None":
    """The daemon's ``(status, body)`` for a ``helper`` request, by ``deadline`` (``time.monotonic()``,
    ``timeout`` from now); None when the helper must answer daemonless, in what is left.
    Fail says why no daemon could be asked (``fastpath.exchange``); OldDaemon, see there."""
    if fastpath.no_daemon():
        return None
    sock_path = paths.runtime_dir(fastpath.getenv) + "/" + paths.SOCKET_NAME
    request = protocol.encode_request(OP, fields)
    # No daemon can listen on a path over the unix limit, nor read a request over its
    # limit (a host of kilobytes): answer daemonless, as tokend-print does.
    if len(sock_path.encode()) > paths.MAX_SOCKET_PATH or len(request) > protocol.MAX_REQUEST:
        return None
    answer = fastpath.exchange(sock_path, request, deadline, timeout)
    if answer is None:
        fastpath.check_fallback(sock_path)
        return None
    status, body = answer
    if status == fastpath.EXIT_USAGE and body.startswith(b"tokend: malformed request: unknown operation"):
        raise OldDaemon()
    return status, body
