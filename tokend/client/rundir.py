"""The runtime directory's checks: ours, a real directory, closed to others."""

from __future__ import annotations

import contextlib
import os

from tokend.client import trust
from tokend.core.errors import EXIT_NO_DAEMON, TokendError


class RuntimeDirError(TokendError):
    """The runtime directory is not ours alone; as for a daemon that cannot be trusted, exit 3."""

    code = "runtime-dir"
    exit_status = EXIT_NO_DAEMON


def prepare_dir(path: str) -> None:
    """Create ``path`` 0700 or verify it: owned by us, no access for group/others.

    Like git's credential-cache, refuse to work in a directory others can
    enter: they could replace the socket with their own. The clients make the
    same check (``tokend.client.trust.dir_problem``) before they connect.
    """
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    why = trust.dir_problem(path)
    if why:
        raise RuntimeDirError(why)
