"""Serving requests: per-connection protocol, limits, dispatch to the broker."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokend import __version__, formats
from tokend.client import protocol
from tokend.core.broker import Broker
from tokend.core.config import Config
from tokend.core.credential import Credential
from tokend.core.durations import parse_duration
from tokend.core.errors import EXIT_FAILED, EXIT_USAGE, TokendError, UnknownProfile
from tokend.core.logs import escape
from tokend.daemon import helpers, revoking
from tokend.daemon.configwatch import ConfigWatch
from tokend.daemon.repeat import RepeatTracker, caller_of
from tokend.daemon.runtime import peer_cred

if TYPE_CHECKING:
    from tokend.daemon.endpoints.daemonwide import DaemonEndpoints

log = logging.getLogger(__name__)

Reply = tuple[int, bytes]

#: What a request gets when serving it raised something unexpected (the traceback goes to the log).
INTERNAL_ERROR: Reply = (EXIT_FAILED, b"tokend: internal error in the daemon; see its log\n")


@dataclass(frozen=True)
class Limits:
    max_request: int = protocol.MAX_REQUEST
    #: A client must complete each request line within this long (half-open guard).
    request_timeout: float = 5.0
    max_connections: int = 2048
    #: Unsent reply bytes past which a connection's requests are no longer read.
    max_unsent: int = 64 * 1024
    #: Complete request lines waiting per connection past which it is no longer read.
    max_pipelined: int = 16


def _error(err: TokendError, profile: str | None = None) -> Reply:
    """The reply for ``err``, naming ``profile`` when the error does not already."""
    if err.profile is None:
        err.profile = profile
    return err.exit_status, (err.line() + "\n").encode()


class Daemon:
    """Dispatches decoded requests; owns the broker and the control operations."""

    def __init__(
        self,
        broker: Broker,
        *,
        reload_config: Callable[[], Config],
        request_stop: Callable[[], None],
        socket_path: str,
        limits: Limits = Limits(),
        config_path: Path | None = None,
        endpoints: DaemonEndpoints | None = None,
    ) -> None:
        self.broker = broker
        self.endpoints = endpoints
        self.limits = limits
        self.socket_path = socket_path
        self._reload_config = reload_config
        self.watch = None if config_path is None else ConfigWatch(config_path, reload_config)
        self._request_stop = request_stop
        self.connections = 0
        self.started = time.time()
        self.repeats = RepeatTracker()

    def dispatch(
        self, op: str, fields: dict[str, str], peer_pid: int = 0
    ) -> Reply | Awaitable[Reply]:
        try:
            if op == "get":
                return self._get(fields, peer_pid)
            if op == "status":
                self._follow_config()
                return 0, (json.dumps(self.status()) + "\n").encode()
            if op == "endpoints":
                self._follow_config()
                served = self.endpoints.environment() if self.endpoints else {}
                return 0, (json.dumps(served) + "\n").encode()
            if op == "routes":
                return self._routes()
            if op == "helper":  # git-credential-tokend, docker-credential-tokend
                self._follow_config()
                return helpers.serve(self.broker, fields)
            if op == "reload":
                return 0, (self.reload() + "\n").encode()
            if op == "drop":
                self.broker.forget(fields.get("profile", ""))
                return 0, b"dropped\n"
            if op == "revoke":
                name = fields.get("profile", "")
                timeout = min(self.broker.profile(name).timeout, revoking.MAX_REVOKE_TIME)
                return self._revoke(name, timeout)
            if op == "stop":
                return self._stop()
            return 0, b"pong\n"
        except TokendError as e:
            return _error(e)
        except Exception:  # a bug in one request must not stop the daemon
            log.exception("internal error serving %r", op)
            return INTERNAL_ERROR

    def _get(self, fields: dict[str, str], peer_pid: int = 0) -> Reply | Awaitable[Reply]:
        name = fields.get("profile")
        if not name:
            return EXIT_USAGE, b"tokend: malformed request: no profile\n"
        fmt = fields.get("format", "raw")
        ctx = {"exec_info": fields["exec_info"]} if "exec_info" in fields else {}
        try:
            min_ttl = parse_duration(fields["min_ttl"]) if "min_ttl" in fields else None
        except ValueError as e:
            return EXIT_USAGE, f"tokend: {name}: --min-ttl: {e}\n".encode()
        self._follow_config()
        force = fields.get("refresh") == "1"
        # tokend-print --refresh-on-repeat. The pid it sends is not trusted (and is
        # only a shell's when the consumer runs it with sh -c): the caller is
        # found from the peer's pid in /proc (tokend/daemon/repeat.py).
        caller = caller_of(peer_pid) if "repeat_caller" in fields and not force else None
        if caller and self.repeats.repeated(name, caller):
            pid = caller.partition(":")[0]
            log.info("%s: asked again by process %s: served as --refresh", name, pid)
            force = True
        try:
            result = self.broker.request(name, fmt=fmt, min_ttl=min_ttl, force=force)
            if isinstance(result, Credential):
                return 0, formats.render(result, fmt, ctx).encode()
        except UnknownProfile as e:
            if self.watch is not None and self.watch.error:
                e.message += f"; the config changed but is invalid: {self.watch.error}"
            return _error(e, name)
        except TokendError as e:
            return _error(e, name)
        return self._render_later(name, result, fmt, ctx)

    async def _revoke(self, name: str, timeout: float) -> Reply:
        """``tokend logout PROFILE``: the daemon's source instance revokes what it holds."""
        try:
            return 0, (await revoking.revoke(self.broker, name, timeout) + "\n").encode()
        except TokendError as e:
            return _error(e, name)

    async def _stop(self) -> Reply:
        said = await revoking.revoke_for_stop(self.broker)  # revoke_on_stop profiles, bounded
        self._request_stop()
        return 0, ("\n".join(["stopping", *said]) + "\n").encode()

    def _routes(self) -> Reply:
        """``[hosts]`` for the git and docker helpers, so they need not parse the config file."""
        self._follow_config()
        routes = {key: [r.profile, r.username] for key, r in self.broker.config.hosts.items()}
        return 0, (json.dumps({"routes": routes}) + "\n").encode()

    def _follow_config(self) -> None:
        new = None if self.watch is None else self.watch.poll()
        if new is not None:
            self._apply(new, "file changed, reloaded")

    async def _render_later(
        self, name: str, pending: Awaitable[Credential], fmt: str, ctx: dict[str, str]
    ) -> Reply:
        try:
            return 0, formats.render(await pending, fmt, ctx).encode()
        except TokendError as e:
            return _error(e, name)

    def reload(self) -> str:
        """Load the config again; on error keep serving the old one and say why."""
        config = self._reload_config()
        if self.watch is not None:
            self.watch.mark_loaded()
        return self._apply(config, "reloaded")

    def _apply(self, config: Config, why: str) -> str:
        dropped = self.broker.reconfigure(config)
        if self.endpoints is not None:
            self.endpoints.apply(config.endpoints)
        log.info(
            "configuration %s from %s; dropped: %s",
            why,
            config.path or "built-in default",
            ", ".join(dropped) or "none",
        )
        return f"reloaded; cache dropped for: {', '.join(dropped) or 'none'}"

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": time.time() - self.started,
            "socket": self.socket_path,
            "config": str(self.broker.config.path or "built-in default"),
            "config_error": None if self.watch is None else self.watch.error,
            "rss_bytes": _rss(),
            "connections": self.connections,
            "profiles": self.broker.status(),
            "endpoints": self.endpoints.status() if self.endpoints else [],
        }


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _encode(status: int, body: bytes) -> bytes:
    """The response; an error is the one line the client prints, so it is kept to one line.

    Parts of an error line can come from the request (a profile name, a format):
    control characters in them are shown as escapes, never passed to a terminal.
    """
    if status != 0:
        body = (escape(body.decode("utf-8", "replace").rstrip("\n")) + "\n").encode()
    return protocol.encode_response(status, body)


class Connection(asyncio.Protocol):
    """One client connection: peer check, bounded line reads, in-order replies.

    Backpressure: a client that sends requests faster than it reads the
    replies is no longer read from (so neither its requests nor our replies
    pile up in memory) until it catches up.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closing = False
        self.eof = False
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.reading = True
        self.write_paused = False  # the transport holds max_unsent bytes the client has not read
        self.peer_pid = 0  # SO_PEERCRED at connect; 0 when unknown

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.daemon.connections += 1
        if self.daemon.connections > self.daemon.limits.max_connections:
            log.warning(
                "connection limit (%d) reached; refusing a client", self.daemon.limits.max_connections
            )
            self._reply_close(EXIT_FAILED, b"tokend: daemon busy (connection limit); retry\n")
            return
        try:
            self.peer_pid, uid = peer_cred(transport.get_extra_info("socket"))
        except OSError as e:
            log.warning("cannot read peer credentials (%s); closing", e)
            transport.abort()
            return
        if uid != os.getuid():
            log.warning("refused a connection from uid %d (only uid %d may connect)", uid, os.getuid())
            transport.abort()
            return
        transport.set_write_buffer_limits(high=self.daemon.limits.max_unsent)
        self._arm()

    def _arm(self) -> None:
        self.timer = self.loop.call_later(self.daemon.limits.request_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport is not None and not self.busy:
            self.closing = True
            if self.transport.get_write_buffer_size():
                # close() would wait for the client to read what is unsent: it never does.
                self.transport.abort()
            else:
                self.transport.close()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._process()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.buf += data
        self._process()

    def eof_received(self) -> bool:
        # A client that shut down its write side still gets its pending replies.
        if not self.busy and not self.buf:
            return False
        self.eof = True
        # An unfinished last request can never complete now: close once the rest is answered.
        self.loop.call_soon(self._process)
        return True

    def _flow(self) -> None:
        """Read from the client only while it is not too far ahead of us."""
        if self.transport is None or self.closing:
            return
        limits = self.daemon.limits
        full = (
            self.write_paused
            or len(self.buf) > limits.max_request
            or self.buf.count(b"\n") >= limits.max_pipelined
        )
        if full and self.reading:
            self.reading = False
            self.transport.pause_reading()
        elif not full and not self.reading:
            self.reading = True
            self.transport.resume_reading()

    def _process(self) -> None:
        if self.transport is None:  # scheduled, then the connection went
            return
        self._serve_buffered()
        self._flow()

    def _serve_buffered(self) -> None:
        limit = self.daemon.limits.max_request
        while not self.busy and not self.closing and not self.write_paused:
            nl = self.buf.find(b"\n", 0, limit + 1)
            if nl < 0:
                if len(self.buf) > limit:
                    self._reply_close(EXIT_USAGE, f"tokend: request over {limit} bytes\n".encode())
                    return
                break
            line = bytes(self.buf[:nl])
            del self.buf[: nl + 1]
            try:
                op, fields = protocol.decode_request(line)
            except protocol.ProtocolError as e:
                self._reply_close(EXIT_USAGE, f"tokend: malformed request: {e}\n".encode())
                return
            result = self.daemon.dispatch(op, fields, self.peer_pid)
            if isinstance(result, tuple):
                self._reply(result)
            else:
                self.busy = True
                self._disarm()
                self.task = self.loop.create_task(self._finish(result))
                return
        if not self.busy and not self.closing and not self.write_paused and self.eof:
            self.closing = True
            if self.transport is not None:
                self.transport.close()

    async def _finish(self, pending: Awaitable[Reply]) -> None:
        try:
            reply = await pending
        except Exception:
            # Whatever the broker, a source or rendering raised, the client gets an
            # answer and the connection its next request: nothing may keep it busy.
            log.exception("internal error serving a request")
            reply = INTERNAL_ERROR
        self.busy = False
        self.task = None
        if self.transport is None or self.transport.is_closing():
            return
        self._reply(reply)
        self._process()

    def _reply(self, reply: Reply) -> None:
        assert self.transport is not None
        self.transport.write(_encode(*reply))
        self._disarm()
        self._arm()

    def _reply_close(self, status: int, body: bytes) -> None:
        assert self.transport is not None
        self.closing = True
        self.transport.write(_encode(status, body))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.daemon.connections -= 1
        self._disarm()
        if self.task is not None:
            self.task.cancel()
        self.transport = None
