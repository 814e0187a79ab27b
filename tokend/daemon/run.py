"""``tokend serve``: start-up checks, the event loop, signals, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
from collections.abc import Callable
from pathlib import Path

from tokend.client import paths
from tokend.client.rundir import prepare_dir
from tokend.core import config as config_mod
from tokend.core import linux
from tokend.core.broker import Broker, Cancellable
from tokend.core.logs import setup_logging
from tokend.daemon import environment, revoking, runtime, systemd
from tokend.daemon.clock import ClockWatcher, Jump
from tokend.daemon.endpoints.daemonwide import DaemonEndpoints
from tokend.daemon.notify import LoginNotifier
from tokend.daemon.server import Connection, Daemon, Limits

log = logging.getLogger("tokend.daemon")

BACKLOG = 1024
SHUTDOWN_GRACE = 3.0


class _LoopTimer:
    """A ``call_later`` handle that may be armed and cancelled from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[[], None]):
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        loop.call_soon_threadsafe(self._arm, delay, fn)

    def _arm(self, delay: float, fn: Callable[[], None]) -> None:
        if not self._cancelled:
            self._handle = self._loop.call_later(delay, fn)

    def cancel(self) -> None:
        self._cancelled = True
        with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _notify_ready() -> None:
    """Tell an autostarting tokend-print that we listen (fd from TOKEND_READY_FD)."""
    fd = os.environ.pop("TOKEND_READY_FD", None)
    if fd and fd.isdigit():
        with contextlib.suppress(OSError):
            os.write(int(fd), b"ready\n")
            os.close(int(fd))


#: Variables naming paths the daemon reads after it left its starting directory.
_PATH_VARIABLES = ("TOKEND_CONFIG", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "HOME")


def _no_core_dumps() -> None:
    """Credentials live in this process's memory: no core file, no ptrace by other processes."""
    if not linux.prctl(linux.PR_SET_DUMPABLE, 0) and linux.available():
        log.warning("could not mark the daemon non-dumpable (prctl PR_SET_DUMPABLE failed)")
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError) as e:
        log.warning("could not disable core dumps: %s", e)


def _leave_cwd(config_path: Path | None) -> Path | None:
    """``chdir("/")`` (a daemon must not pin a directory); relative paths resolved first."""
    for name in _PATH_VARIABLES:
        value = os.environ.get(name)
        if value and not os.path.isabs(os.path.expanduser(value)):
            os.environ[name] = os.path.abspath(os.path.expanduser(value))
    absolute = config_path.expanduser().absolute() if config_path is not None else None
    os.chdir("/")
    return absolute


def _load(config_path: Path | None) -> config_mod.Config:
    """The configuration, with the environment variables it names let through."""
    config = config_mod.load(config_path)
    environment.admit(environment.named_by(p.options for p in config.profiles.values()))
    return config


def serve(config_path: Path | None = None) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT or ``tokend stop``."""
    setup_logging()
    _no_core_dumps()
    dropped = environment.restrict()
    if dropped:
        log.debug("environment reduced to the allow-list; dropped: %s", ", ".join(dropped))
    config_path = _leave_cwd(config_path)
    config = _load(config_path)
    rundir = paths.runtime_dir()
    prepare_dir(rundir)
    lock_fd = runtime.take_instance_lock(rundir)
    sock_path = paths.socket_path()
    inherited = systemd.listen_fds()
    if inherited:
        # Socket activation: systemd made the directory, the socket and its mode.
        sock = inherited[0]
        systemd.check_listener(sock)
        for extra in inherited[1:]:
            log.warning("ignoring extra socket %s passed by the service manager", extra.getsockname())
            extra.close()
        sock.setblocking(False)
        sock_path = sock.getsockname() or sock_path
    else:
        sock = runtime.bind_socket(sock_path, BACKLOG)
    _raise_fd_limit()
    try:
        asyncio.run(_main(config, config_path, sock, sock_path))
    finally:
        if not inherited:  # an activated socket belongs to systemd
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sock_path)
        os.close(lock_fd)
    return 0


async def _main(
    config: config_mod.Config, config_path: Path | None, sock: socket.socket, sock_path: str
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def schedule(delay: float, fn: Callable[[], None]) -> Cancellable:
        def fire() -> None:
            fn()
            # The loop is awake anyway: a timer firing late is how a suspend
            # shows where there is no timerfd.
            clock.check("refresh timer")

        return _LoopTimer(loop, delay, fire)

    broker = Broker(config, scheduler=schedule, on_failure=LoginNotifier())

    def on_jump(jump: Jump) -> None:
        refreshing = broker.wake()
        if refreshing:
            log.info("refreshing after the clock jump: %s", ", ".join(refreshing))

    clock = ClockWatcher(on_jump)
    endpoints = DaemonEndpoints(broker)
    daemon = Daemon(
        broker,
        reload_config=lambda: _load(config_path),
        config_path=config_path or config_mod.default_path(),  # the environment is fixed by now
        request_stop=stop.set,
        socket_path=sock_path,
        limits=Limits(),
        endpoints=endpoints,
    )

    def on_hup() -> None:
        systemd.reloading()
        try:
            daemon.reload()
            status = f"serving on {sock_path}, configuration reloaded"
        except Exception as e:  # keep serving the old config, say why
            log.error("reload failed, keeping the previous configuration: %s", e)
            status = f"serving on {sock_path}, reload failed: {e}"
        systemd.notify(f"READY=1\nSTATUS={status}")

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    server = await loop.create_unix_server(lambda: Connection(daemon), sock=sock, backlog=BACKLOG)
    endpoints.apply(config.endpoints)
    log.info(
        "tokend %d serving on %s (config: %s)", os.getpid(), sock_path, config.path or "built-in default"
    )
    _notify_ready()
    systemd.notify(f"READY=1\nSTATUS=serving on {sock_path}")
    clock.start(loop)
    systemd.start_watchdog(loop, on_ping=lambda: clock.check("watchdog"))
    await stop.wait()
    log.info("stopping")
    systemd.notify("STOPPING=1\nSTATUS=stopping")
    clock.close()
    endpoints.close()
    server.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE)
    # SIGTERM, or requests served after `tokend stop` revoked: revoke_on_stop profiles only.
    await revoking.revoke_for_stop(broker)
    broker.close()
