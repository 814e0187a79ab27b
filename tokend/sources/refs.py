"""Secrets a profile names by reference, never by value: ``env:VAR``, ``file:PATH``, ``keyring:[SVC/]USER``.

A secret file must be one only the user controls: owned by the user (or
root, for mounted secrets such as Kubernetes service-account tokens) and not
writable by group or others, checked on the opened file (so through any
symlink). Someone who can rewrite it decides which identity tokend hands out:
their token would be served for our git pushes, our Vault reads.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from tokend.core.errors import REDACTOR, ConfigError, SourceError, SourceUnavailable

MAX_FILE = 1 << 20
KINDS = ("env", "file", "keyring")


def check_ref(ref: str | None, key: str, profile: str, *, literal_ok: bool = False) -> None:
    """Raise ConfigError unless ``ref`` is env:/file:/keyring: (or any literal, when allowed)."""
    if ref is None or literal_ok:
        return
    kind, sep, rest = ref.partition(":")
    if not (sep and rest and kind in KINDS):
        raise ConfigError(
            f"profiles.{profile}.{key}: expected env:VARIABLE, file:PATH or keyring:[SERVICE/]USERNAME "
            "(never the secret itself in the config)"
        )


def read_ref(ref: str, key: str, *, environ: Mapping[str, str], literal_ok: bool = False) -> str:
    """The value ``ref`` points at; SourceUnavailable when there is none."""
    kind, sep, rest = ref.partition(":")
    if sep and kind == "env":
        value = environ.get(rest, "").strip()
        if not value:
            raise SourceUnavailable(f"environment variable {rest} ({key}) is not set")
    elif sep and kind == "file":
        value = read_secret_file(os.path.expanduser(rest), f"{rest} ({key})")
    elif sep and kind == "keyring":
        value = _read_keyring(rest, key)
    elif literal_ok:
        return ref  # an identifier such as a role_id, not a secret
    else:
        raise SourceError(f"{key}: not a reference: {kind}", retryable=False)
    REDACTOR.add([value])
    return value


def file_problem(st: os.stat_result, uid: int | None = None) -> str | None:
    """Why a secret file with status ``st`` could be changed by someone other than ``uid``; None if not."""
    me = os.getuid() if uid is None else uid
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid not in (me, 0):
        return f"owned by uid {st.st_uid}, not you: another user decides what it holds (use a file you own)"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {st.st_mode & 0o7777:04o}): chmod go-w it"
    return None


def read_secret_bytes(path: str, what: str) -> bytes:
    """The bytes of the secret file at ``path`` (``what`` names it in errors), at most ``MAX_FILE``."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would block this worker forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceUnavailable(f"{what}: no such file") from None
    except OSError as e:
        raise SourceError(f"{what}: {e.strerror}") from None
    try:
        why = file_problem(os.fstat(fd))
        if why:
            raise SourceError(f"{what}: refusing a secret file {why}", retryable=False)
        with open(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise SourceError(f"{what}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise SourceError(f"{what}: larger than {MAX_FILE} bytes", retryable=False)
    return data


def read_secret_file(path: str, what: str) -> str:
    """The stripped UTF-8 text of the secret file at ``path`` (``what`` names it in errors)."""
    try:
        value = read_secret_bytes(path, what).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SourceError(f"{what}: not UTF-8 text", retryable=False) from None
    if not value:
        raise SourceError(f"{what}: the file is empty")  # a mount not filled yet: worth a retry
    return value


def _read_keyring(spec: str, key: str) -> str:
    import keyring
    import keyring.errors

    service, _, user = spec.rpartition("/")
    service = service or "tokend"
    try:
        value = keyring.get_password(service, user)
    except keyring.errors.KeyringError as e:
        raise SourceError(f"keychain ({key}): {type(e).__name__}: {e}") from None
    if not value:
        raise SourceUnavailable(
            f"no {key} in the keychain for {service}/{user} (store it with a keyring profile named {user!r} "
            f"and `tokend secret set {user}`)"
        )
    return str(value)
