"""The runtime directory's checks: ours, a real directory, closed to others."""

from __future__ import annotations

import contextlib
import os
import stat

from tokend.core.errors import TokendError


class RuntimeDirError(TokendError):
    code = "runtime-dir"


def prepare_dir(path: str) -> None:
    """Create ``path`` 0700 or verify it: owned by us, no access for group/others.

    Like git's credential-cache, refuse to work in a directory others can
    enter: they could replace the socket with their own.
    """
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise RuntimeDirError(f"{path} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise RuntimeDirError(f"refusing to use {path}: mode {mode:04o} lets others in (chmod 700 {path})")
