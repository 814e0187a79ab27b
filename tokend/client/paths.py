"""Where tokend keeps its runtime files.

The fast path imports this, so it stays off ``os`` (importing ``os`` costs
about a millisecond of the helper's start-up): callers may pass their own
environment lookup, and ``posix`` gives the uid.
"""

import posix

# No __future__ import, no typing: each costs time on the fast path.
TYPE_CHECKING = False  # typing itself is too heavy to import on the fast path
if TYPE_CHECKING:
    from collections.abc import Callable

    Getenv = Callable[[str], str | None]

SOCKET_NAME = "tokend.sock"
#: sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def _getenv(name: str) -> str | None:
    import os  # already imported everywhere but on the fast path, which passes its own

    return os.environ.get(name)


def runtime_dir(getenv: "Getenv" = _getenv) -> str:
    """``$XDG_RUNTIME_DIR/tokend``, else a per-user directory under /tmp."""
    base = getenv("XDG_RUNTIME_DIR")
    if base:
        return base.rstrip("/") + "/tokend"
    return f"/tmp/tokend-{posix.getuid()}"


def socket_path(getenv: "Getenv" = _getenv) -> str:
    return runtime_dir(getenv) + "/" + SOCKET_NAME


def log_path(getenv: "Getenv" = _getenv) -> str:
    return runtime_dir(getenv) + "/tokend.log"


def config_path(getenv: "Getenv" = _getenv) -> str:
    """The config file: ``$TOKEND_CONFIG``, else ``$XDG_CONFIG_HOME/tokend/config.toml``
    (``~/.config`` by default). The daemon, ``tokend`` and the helpers all find it here."""
    import os.path  # only the helpers and the full CLI read the config; both have os already

    explicit = getenv("TOKEND_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    base = getenv("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "tokend", "config.toml")
