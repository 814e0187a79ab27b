"""Atomic file writes: a temp file next to the target, fsync, then rename.

A reader sees the whole old file or the whole new one, never half of either
(botocore's ``JSONFileCache``, gke-gcloud-auth-plugin's cache).
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    mode: int | None = None,
    keep_mask: int = 0o777,
    default_mode: int = 0o600,
    follow_symlinks: bool = True,
    dir_mode: int | None = 0o700,
    prefix: str = ".tokend-",
    suffix: str = "",
) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically.

    ``mode`` forces the file's mode; without it the file keeps the bits of
    ``keep_mask`` it has now, or gets ``default_mode`` if it is new (or would
    keep no bits at all). ``follow_symlinks`` writes through a symlink, so a
    symlinked file (dotfiles) stays a symlink. ``dir_mode`` creates the parent
    directory with that mode if it is missing; None leaves it to the caller.
    """
    target = os.path.realpath(path) if follow_symlinks else os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if dir_mode is not None:
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
    if mode is None:
        try:
            mode = os.stat(target).st_mode & keep_mask or default_mode
        except FileNotFoundError:
            mode = default_mode
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
