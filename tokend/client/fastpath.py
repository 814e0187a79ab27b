"""``tokend-print``: ask the daemon for one credential and print it.

This is the hot path of every consumer call, so it imports only what one
request needs (no click, no SDK, not even the ``socket`` module) and keeps its
own deadline below the Codex CLI's 5 s default. When no daemon answers it
starts one (one per herd, under a file lock), and failing that it runs the
request daemonless by exec'ing ``tokend get --no-daemon``.

It believes only what the user controls: before it connects, creates, locks or
logs anything it checks that the runtime directory is the user's own and
closed to others, and it asks no daemon that runs as another uid
(``tokend.client.trust``). A refusal is one line and exit status 3.
"""

import posix  # os's C core: ``import os`` alone would add ~1 ms to every call
import sys
import time

from tokend.client import paths, protocol, trust

USAGE = "usage: tokend-print PROFILE [--format F] [--min-ttl D] [--refresh] [--refresh-on-repeat]"
HELP = USAGE + """

Print PROFILE's credential on stdout, from the tokend daemon (started on
first use) or, when none can run, fetched in this process.

options:
  -f, --format F       raw (default), json, header, env, aws-process,
                       aws-sts (Claude Code's awsCredentialExport),
                       exec-credential (kubectl; reads KUBERNETES_EXEC_INFO)
  --min-ttl D          at least this much life left (e.g. 10m), else refetch
  --refresh            a new credential from upstream (rate-limited per profile)
  --refresh-on-repeat  the same calling process asking again soon (after a 401)
                       is served as --refresh

environment:
  TOKEND_TIMEOUT       seconds to wait for a credential (default 4)
  TOKEND_CONFIG        config file (default $XDG_CONFIG_HOME/tokend/config.toml)
  TOKEND_NO_DAEMON     1: no daemon, fetch in this process (default in CI=true)
  TOKEND_NO_AUTOSTART  1: do not start a daemon when none runs
  TOKEND_NO_FALLBACK   1: fail instead of fetching in this process
  XDG_RUNTIME_DIR      where the daemon's socket lives

exit status:
  0  the credential is on stdout
  1  no credential (upstream failed or refused, or the deadline passed)
  2  usage or configuration error
  3  no daemon could be asked (refused runtime directory, broken daemon)
  4  sign-in needed (run tokend login PROFILE)

more: tokend status, tokend doctor, man tokend"""
DEFAULT_TIMEOUT = 4.0
#: Share of the deadline kept back for the daemonless fallback after an autostart.
FALLBACK_RESERVE = 0.25

EXIT_FAILED, EXIT_USAGE, EXIT_NO_DAEMON = 1, 2, 3

TYPE_CHECKING = False  # typing itself is too heavy to import here
if TYPE_CHECKING:
    from collections.abc import Callable

    Getenv = Callable[[str], str | None]
    #: Runs the request daemonless: ``fallback(fields, deadline) -> (status, body)``.
    Fallback = Callable[[dict[str, str], float], tuple[int, bytes]]


def getenv(name: str) -> str | None:
    value = posix.environ.get(name.encode())
    return None if value is None else value.decode("utf-8", "surrogateescape")


class Fail(Exception):
    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status = status
        self.line = line


def parse_args(argv: list[str]) -> dict[str, str]:
    """PROFILE and options as request fields; Fail(2) on anything else."""
    fields: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        name, eq, inline = arg.partition("=")
        if name in ("--format", "-f", "--min-ttl"):
            value = inline if eq else next(it, None)
            if value is None:
                raise Fail(EXIT_USAGE, f"tokend-print: {name} needs a value ({USAGE})")
            fields["format" if name in ("--format", "-f") else "min_ttl"] = value
        elif arg == "--refresh":
            fields["refresh"] = "1"
        elif arg == "--refresh-on-repeat":
            # Asked again by the same caller soon (Codex, Claude Code after a 401):
            # the daemon serves that as --refresh. It finds the caller itself, past
            # shell wrappers (tokend/daemon/repeat.py); the pid sent is informational.
            fields["repeat_caller"] = str(posix.getppid())
        elif arg in ("-h", "--help"):
            raise Fail(0, HELP)
        elif arg.startswith("-") and arg != "-":
            raise Fail(EXIT_USAGE, f"tokend-print: unknown option {arg} ({USAGE})")
        elif "profile" in fields:
            raise Fail(EXIT_USAGE, f"tokend-print: unexpected argument {arg!r} ({USAGE})")
        else:
            fields["profile"] = arg
    if "profile" not in fields:
        raise Fail(EXIT_USAGE, USAGE)
    info = getenv("KUBERNETES_EXEC_INFO")
    if info:
        fields["exec_info"] = info
    return fields


def missed_deadline(seconds: float) -> str:
    """The one wording for a request that ran out of time, with or without a daemon."""
    return f"no credential within {round(seconds, 1):g}s (TOKEND_TIMEOUT)"


def timeout_from_env() -> float:
    raw = getenv("TOKEND_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 3600:
        raise Fail(EXIT_USAGE, f"tokend-print: TOKEND_TIMEOUT={raw!r}: expected seconds, e.g. 2 or 0.5")
    return value


TRUTHY = ("1", "true", "yes", "on")


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUTHY


def _truthy(name: str) -> bool:
    return truthy(getenv(name))


def in_ci(env: "Getenv | None" = None) -> bool:
    """``CI=true``: nobody is at the keyboard (GitHub Actions, GitLab CI, and most others set it)."""
    return truthy((env or getenv)("CI"))


def no_daemon(env: "Getenv | None" = None) -> bool:
    """``TOKEND_NO_DAEMON`` when set, else ``CI=true``: a CI job has no daemon to share.

    The one definition: ``tokend.ci.daemonless`` (the full CLI) calls this. ``env``
    looks a variable up (default: this process's environment).
    """
    explicit = (env or getenv)("TOKEND_NO_DAEMON")
    if explicit and explicit.strip():
        return truthy(explicit)
    return in_ci(env)


def _tokend_argv() -> list[str]:
    """How to run the full CLI: the ``tokend`` next to this helper, else ``python -m tokend``."""
    import os

    here = os.path.dirname(os.path.realpath(sys.argv[0]))
    exe = os.path.join(here, "tokend")
    if os.access(exe, os.X_OK):
        return [exe]
    return [sys.executable, "-m", "tokend"]


def daemonless_argv(fields: dict[str, str], deadline: float) -> list[str]:
    """``tokend get --no-daemon`` for the request ``fields`` within ``deadline``: the one daemonless run."""
    argv = [*_tokend_argv(), "get", "--no-daemon", fields["profile"]]
    for key, flag in (("format", "--format"), ("min_ttl", "--min-ttl")):
        if key in fields:
            argv += [flag, fields[key]]
    if fields.get("refresh"):
        argv.append("--refresh")
    argv += ["--timeout", f"{max(deadline - time.monotonic(), 0.1):.3f}"]
    return argv


def daemonless(fields: dict[str, str], deadline: float) -> None:
    """Replace this process with ``tokend get --no-daemon`` (no child left behind)."""
    argv = daemonless_argv(fields, deadline)
    posix.execv(argv[0], argv)


def _lock(path: str, deadline: float) -> int | None:
    import fcntl
    import os

    fd = trust.open_private(path, os.O_RDWR | os.O_CREAT)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.005)


def autostart(sock_path: str, request: bytes, deadline: float) -> tuple[int, bytes] | None:
    """Start a daemon (exactly one per herd) and ask again; None when that did not work.

    Fail when the runtime directory or a file in it is not ours alone.
    """
    import os

    rundir = os.path.dirname(sock_path)
    try:
        os.makedirs(rundir, mode=0o700, exist_ok=True)
    except OSError:
        return None
    # Again after creating it: it may have been there (someone else's) all along.
    if not trusted_dir(rundir):
        return None
    try:
        fd = _lock(os.path.join(rundir, "autostart.lock"), deadline)
    except trust.Refused as e:
        raise Fail(EXIT_NO_DAEMON, "tokend: " + e.line) from None
    except OSError:
        return None
    if fd is None:
        return None
    try:
        try:  # another caller may have started it while we waited for the lock
            return protocol.call(sock_path, request, max(deadline - time.monotonic(), 0.001))
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        if not _spawn_daemon(rundir, deadline):
            return None
    finally:
        os.close(fd)  # releases the lock
    return protocol.call(sock_path, request, max(deadline - time.monotonic(), 0.001))


def _spawn_daemon(rundir: str, deadline: float) -> bool:
    """Run ``tokend serve`` detached in its own session; True once it listens."""
    import os
    import select
    import subprocess

    try:
        log_path = os.path.join(rundir, "tokend.log")
        log_fd = trust.open_private(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except trust.Refused as e:
        raise Fail(EXIT_NO_DAEMON, "tokend: " + e.line) from None
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, TOKEND_READY_FD=str(write_fd))
    try:
        subprocess.Popen(
            [*_tokend_argv(), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=(write_fd,),
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    except OSError:
        return False
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], max(deadline - time.monotonic(), 0))
        return bool(ready) and os.read(read_fd, 16).startswith(b"ready")
    finally:
        os.close(read_fd)


def trusted_dir(rundir: str) -> bool:
    """Whether ``rundir`` exists; Fail(3) when it is not a directory of ours closed to others
    (another user could have put their own daemon there)."""
    try:
        why = trust.dir_problem(rundir)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise Fail(EXIT_NO_DAEMON, f"tokend: cannot check {rundir}: {e.strerror}") from None
    if why:
        raise Fail(EXIT_NO_DAEMON, "tokend: " + why)
    return True


def ask(fields: dict[str, str], timeout: float, fallback: "Fallback") -> tuple[int, bytes]:
    """The daemon's answer for another thin helper (git, docker): as tokend-print's,
    but ``fallback`` runs the request daemonless instead of exec'ing ``tokend get``."""
    return _ask(fields, timeout, fallback)


def no_daemon_why() -> str:
    """Why no daemon answered and none will be asked, for the TOKEND_NO_FALLBACK error line."""
    if _truthy("TOKEND_NO_AUTOSTART"):
        return "autostart disabled by TOKEND_NO_AUTOSTART; fallback disabled by TOKEND_NO_FALLBACK"
    return "autostart failed; fallback disabled by TOKEND_NO_FALLBACK"


def exchange(
    sock_path: str, request: bytes, deadline: float, timeout: float, who: str = ""
) -> tuple[int, bytes] | None:
    """The daemon's answer to ``request``, starting one when none listens, by ``deadline``
    (``time.monotonic()``, ``timeout`` from now); None when no daemon answered.

    Fail says why no daemon could be asked (a refused runtime directory or peer,
    a broken daemon, a missed deadline), its line prefixed with ``who``
    (``"PROFILE: "``, or nothing where the client knows no profile).
    """
    rundir = sock_path.rpartition("/")[0]
    try:
        # Nothing is created, locked, asked or believed before this check.
        if trusted_dir(rundir):
            try:
                return protocol.call(sock_path, request, timeout)
            except (FileNotFoundError, ConnectionRefusedError):
                pass
        if not _truthy("TOKEND_NO_AUTOSTART"):
            return autostart(sock_path, request, deadline - timeout * FALLBACK_RESERVE)
    except trust.Refused as e:
        raise Fail(EXIT_NO_DAEMON, "tokend: " + e.line) from None
    except TimeoutError:
        raise Fail(EXIT_FAILED, f"tokend: {who}{missed_deadline(timeout)}") from None
    except (protocol.NoAnswer, protocol.ProtocolError, OSError) as e:
        raise Fail(
            EXIT_NO_DAEMON,
            f"tokend: {who}daemon at {sock_path} failed to answer ({e.__class__.__name__}: {e})",
        ) from None
    return None


def check_fallback(sock_path: str, who: str = "") -> None:
    """Fail when no daemon answered and TOKEND_NO_FALLBACK forbids answering without one."""
    if _truthy("TOKEND_NO_FALLBACK"):
        raise Fail(EXIT_NO_DAEMON, f"tokend: {who}no daemon at {sock_path} ({no_daemon_why()})")


def _ask(fields: dict[str, str], timeout: float, fallback: "Fallback | None" = None) -> tuple[int, bytes]:
    """The daemon's answer; starts a daemon or goes daemonless when none listens."""
    deadline = time.monotonic() + timeout
    sock_path = paths.runtime_dir(getenv) + "/" + paths.SOCKET_NAME
    who = fields["profile"] + ": "
    # No daemon can listen on a path over the unix limit (tokend serve refuses
    # it): go straight to the daemonless fallback, as ``tokend get`` does.
    if len(sock_path.encode()) <= paths.MAX_SOCKET_PATH:
        answer = exchange(sock_path, protocol.encode_request("get", fields), deadline, timeout, who)
        if answer is not None:
            return answer
    check_fallback(sock_path, who)
    if fallback is not None:
        return fallback(fields, deadline)
    daemonless(fields, deadline)
    raise AssertionError("unreachable")  # pragma: no cover  (daemonless execs)


def run(argv: list[str]) -> int:
    fields = parse_args(argv)
    timeout = timeout_from_env()
    if no_daemon():
        daemonless(fields, time.monotonic() + timeout)
    status, body = _ask(fields, timeout)
    if status == 0:
        posix.write(1, body)
    else:
        posix.write(2, body.rstrip(b"\n") + b"\n")
    return status


def main() -> None:
    try:
        status = run(sys.argv[1:])
    except Fail as f:
        if f.line:
            posix.write(2 if f.status else 1, f.line.encode() + b"\n")
        status = f.status
    except BrokenPipeError:
        status = EXIT_FAILED
    sys.exit(status)
