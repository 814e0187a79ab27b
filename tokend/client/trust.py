"""What a client checks before it trusts the runtime directory, the daemon or the config.

Another local user must not be able to answer in the daemon's place nor make
tokend run their commands (DESIGN §6). The runtime-directory and peer checks
run on tokend-print's hot path, so this module imports only ``posix`` at the
top (``os`` and ``stat`` cost time there) and spells stat constants by value.
Messages carry no ``tokend: `` prefix: callers add it as their output wants.
"""

import posix

TYPE_CHECKING = False  # typing itself is too heavy to import on the fast path
if TYPE_CHECKING:
    from os import stat_result

# From <sys/stat.h>; the same on Linux and the BSDs.
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFLNK = 0o120000
_S_ISVTX = 0o1000
_GROUP_OTHER_WRITE = 0o022


class Refused(Exception):
    """Something another user could control; ``line`` says what and how to fix it."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def dir_problem(path: str, uid: int | None = None) -> str | None:
    """Why ``path`` is not a real directory of ``uid`` (default: ours) closed to
    everyone else; None when it is. FileNotFoundError when it does not exist.

    lstat, not stat: a symlink there could point into another user's directory.
    """
    st = posix.lstat(path)
    me = posix.getuid() if uid is None else uid
    kind = st.st_mode & _S_IFMT
    if kind == _S_IFLNK:
        return f"refusing {path}: a symlink, not a directory (remove it)"
    if kind != _S_IFDIR:
        return f"refusing {path}: not a directory (remove it)"
    if st.st_uid != me:
        return f"refusing {path}: owned by uid {st.st_uid}, not you (remove it; another user owns it)"
    mode = st.st_mode & 0o7777
    if mode & 0o077:
        return f"refusing {path}: mode {mode:04o} lets others in (chmod 700 {path})"
    return None


def peer_uid(sock: object) -> int:
    """The uid of the process that listens at the other end of a connected unix socket."""
    import _socket  # the socket module costs ~5 ms of imports; the C module does not

    getsockopt = sock.getsockopt  # type: ignore[attr-defined]
    option = getattr(_socket, "SO_PEERCRED", None)
    if option is not None:
        # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid;}
        raw: bytes = getsockopt(_socket.SOL_SOCKET, option, 12)
    else:  # pragma: no cover  (macOS, FreeBSD: struct xucred {u_int version; uid_t uid; ...})
        raw = getsockopt(0, getattr(_socket, "LOCAL_PEERCRED", 1), 76)
    import sys

    return int.from_bytes(raw[4:8], sys.byteorder)


def check_peer(sock: object, path: str) -> None:
    """Refused unless the daemon listening at ``path`` runs as us."""
    uid = peer_uid(sock)
    if uid != posix.getuid():
        raise Refused(f"the daemon at {path} runs as uid {uid}, not you: refusing its answer")


def open_private(path: str, flags: int) -> int:
    """``posix.open`` of a file in our runtime directory, never through a symlink,
    created 0600, not inherited by children; Refused for a symlink."""
    try:
        return posix.open(path, flags | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600)
    except OSError:
        try:
            planted = posix.lstat(path).st_mode & _S_IFMT == _S_IFLNK
        except OSError:
            planted = False
        if planted:
            raise Refused(f"refusing {path}: a symlink (remove it)") from None
        raise


def config_problem(path: str, st: "stat_result", uid: int | None = None) -> str | None:
    """Why the config at ``path`` could be changed by someone other than ``uid``
    (default: us); None when it cannot. ``st`` is the file's own status (fstat of
    the opened file, so through any symlink: the target's owner matters).

    Its profiles can run commands, so the file must be ours (root's counts only
    for root), not writable by others, and in directories others cannot write
    (a sticky one like /tmp is fine: nobody else may replace our file there).
    """
    import os

    me = posix.getuid() if uid is None else uid
    link = os.lstat(path)
    target = os.path.realpath(path)
    via = f" (through the symlink to {target})" if link.st_mode & _S_IFMT == _S_IFLNK else ""
    if st.st_uid != me:
        return (
            f"{path}: refusing a config owned by uid {st.st_uid}, not you{via} "
            f"(profiles can run commands): use a config file you own"
        )
    if st.st_mode & _GROUP_OTHER_WRITE:
        fix = target if via else path
        return (
            f"{path}: refusing a config writable by group or others{via} "
            f"(mode {st.st_mode & 0o7777:04o}; profiles can run commands): chmod go-w {fix}"
        )
    if via and link.st_uid not in (me, 0):
        return f"{path}: refusing a config through a symlink owned by uid {link.st_uid} (replace the symlink)"
    for directory in dict.fromkeys((os.path.dirname(os.path.abspath(path)), os.path.dirname(target))):
        why = _config_dir_problem(path, directory, me)
        if why:
            return why
    return None


def _config_dir_problem(path: str, directory: str, me: int) -> str | None:
    import os

    st = os.stat(directory)
    if st.st_uid not in (me, 0):
        return (
            f"{path}: refusing a config in {directory}, owned by uid {st.st_uid}, not you "
            f"(profiles can run commands): move the config to a directory of yours"
        )
    mode = st.st_mode & 0o7777
    if mode & _GROUP_OTHER_WRITE and not mode & _S_ISVTX:
        return (
            f"{path}: refusing a config in {directory}, which others can write "
            f"(mode {mode:04o}; profiles can run commands): chmod go-w {directory}"
        )
    return None


def read_config(path: str) -> bytes:
    """The config file's bytes; Refused when another user could change it, the
    OSError of ``open`` (FileNotFoundError: there is none) otherwise."""
    import os

    with open(path, "rb") as f:
        why = config_problem(path, os.fstat(f.fileno()))
        if why:
            raise Refused(why)
        return f.read()
