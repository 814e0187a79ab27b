"""The ``helper`` request: the git and docker credential helpers' whole answer, rendered here.

A helper sends what it read (git: the host, and the protocol it checked is
https; docker: the server URL) and its output format; the daemon resolves the
host through ``[hosts]``, gets the profile's credential and renders exactly
what the helper prints. The helper then needs no JSON, no regular expressions
and no config parsing: it costs what ``tokend-print`` costs.

Fields: ``format`` (``git-credential`` or ``docker-credential``), ``host``
(git's host, or docker's server URL, echoed as ``ServerURL``), ``protocol``
(git), ``refresh=1`` for an erase (a new credential, rate-limited; the answer
is empty). An unmapped host is git's empty answer (git asks its next helper)
and docker's ``credentials not found in native keychain`` with status 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping

from tokend import formats
from tokend.client import hosts
from tokend.core.broker import Broker
from tokend.core.credential import Credential
from tokend.core.errors import EXIT_FAILED, EXIT_USAGE, TokendError

Reply = tuple[int, bytes]

#: docker's answer for a registry no helper knows: docker carries on without credentials.
DOCKER_NOT_FOUND: Reply = (EXIT_FAILED, b"credentials not found in native keychain\n")
MAX_HOST = 2048


def _bad_host(host: str) -> str | None:
    """Why ``host`` cannot be looked up (it is echoed to the helper's consumer), or None."""
    if not host.strip():
        return "no host"
    if len(host) > MAX_HOST:
        return f"host over {MAX_HOST} characters"
    if any(c < " " or c == "\x7f" for c in host):
        return "control character in the host"
    return None


def serve(broker: Broker, fields: Mapping[str, str]) -> Reply | Awaitable[Reply]:
    """The helper's output for ``fields`` (see the module docstring), or its error line."""
    fmt = fields.get("format", "")
    render = formats.HELPER_RENDERERS.get(fmt)
    if render is None:
        return EXIT_USAGE, f"tokend: malformed request: unknown helper format {fmt[:32]!r}\n".encode()
    git = fmt == "git-credential"
    host = fields.get("host", "")
    why = _bad_host(host)
    if why:
        return EXIT_USAGE, f"tokend: malformed request: {why}\n".encode()
    if git and fields.get("protocol") != "https":
        return 0, b""  # never over plain http: git asks its next helper
    route = hosts.match(broker.config.hosts, host)
    if route is None:
        return (0, b"") if git else DOCKER_NOT_FOUND
    ctx = {"host": host, "server": host.strip(), "username": route.username or ""}
    erase = fields.get("refresh") == "1"
    try:
        result = broker.request(route.profile, fmt="json", force=erase)
        if isinstance(result, Credential):
            return _render(route.profile, result, fmt, ctx, erase)
    except TokendError as e:
        return _error(e, route.profile)
    return _render_later(route.profile, result, fmt, ctx, erase)


def _render(profile: str, cred: Credential, fmt: str, ctx: Mapping[str, str], erase: bool) -> Reply:
    if erase:
        return 0, b""  # the new credential is cached for git's next get
    try:
        return 0, formats.HELPER_RENDERERS[fmt](cred, ctx).encode()
    except TokendError as e:
        return _error(e, profile)


async def _render_later(
    profile: str, pending: Awaitable[Credential], fmt: str, ctx: Mapping[str, str], erase: bool
) -> Reply:
    try:
        cred = await pending
    except TokendError as e:
        return _error(e, profile)
    return _render(profile, cred, fmt, ctx, erase)


def _error(err: TokendError, profile: str) -> Reply:
    if err.profile is None:
        err.profile = profile
    return err.exit_status, (err.line() + "\n").encode()
