"""Where Application Default Credentials live, and a cheap stamp of whose they are.

Stdlib only: the daemon consults the stamp on every request for a google
profile, so it costs a few ``os.stat`` calls and reads file contents only when
a stat changed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

ADC_FILE_NAME = "application_default_credentials.json"
#: google-auth's name for the explicit ADC variable (google.auth.environment_vars.CREDENTIALS).
ENV_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"


def gcloud_config_dir(environ: Mapping[str, str] = os.environ) -> str:
    """gcloud's configuration directory, as google-auth's ``_cloud_sdk.get_config_path`` finds it."""
    explicit = environ.get("CLOUDSDK_CONFIG")
    if explicit:
        return explicit
    if os.name == "nt":  # pragma: no cover
        return os.path.join(environ.get("APPDATA", "C:\\"), "gcloud")
    return os.path.join(os.path.expanduser("~"), ".config", "gcloud")


def well_known_adc_path(environ: Mapping[str, str] = os.environ) -> str:
    """The file ``gcloud auth application-default login`` writes."""
    return os.path.join(gcloud_config_dir(environ), ADC_FILE_NAME)


@dataclass(frozen=True)
class AdcFile:
    """The credentials file a profile uses, and why that one."""

    path: str
    origin: str  # "credentials_file", "GOOGLE_APPLICATION_CREDENTIALS" or "gcloud"

    @property
    def is_well_known(self) -> bool:
        return self.origin == "gcloud"


def adc_file(credentials_file: str | None, environ: Mapping[str, str] = os.environ) -> AdcFile:
    """The file a profile reads, in google-auth's order (the metadata server comes after it)."""
    if credentials_file:
        return AdcFile(os.path.expanduser(credentials_file), "credentials_file")
    explicit = environ.get(ENV_CREDENTIALS)
    if explicit:
        return AdcFile(explicit, ENV_CREDENTIALS)
    return AdcFile(well_known_adc_path(environ), "gcloud")


def gcloud_active_config(environ: Mapping[str, str] = os.environ) -> str:
    """The file naming gcloud's active configuration (``gcloud config configurations activate``)."""
    return os.path.join(gcloud_config_dir(environ), "active_config")


def gcloud_config_file(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """The properties file of configuration ``name`` (its ``[core] account`` is the active account)."""
    return os.path.join(gcloud_config_dir(environ), "configurations", f"config_{name or 'default'}")


_StatKey = tuple[int, int, int, int] | None


def _stat(path: str) -> _StatKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class IdentityStamp:
    """A digest of the files that decide whose credential a profile gets.

    ``current()`` stats the files and re-reads one only when its stat changed, so
    a ``touch`` or gcloud rewriting identical contents does not count as a change
    but any new contents (another account, a new refresh token, a new key) do.
    Besides the credentials file it covers gcloud's active configuration and that
    configuration's properties (the active account). The digest is kept in
    memory only; it covers secrets, so it is never logged.
    """

    def __init__(self, credentials_path: str, environ: Mapping[str, str] = os.environ) -> None:
        self._credentials_path = credentials_path
        self._environ = environ
        self._memo: dict[str, tuple[_StatKey, str, str]] = {}
        self._lock = threading.Lock()

    def _read(self, path: str, *, keep_text: bool = False) -> tuple[str, str]:
        """(digest, text) of ``path``, from the memo unless its stat changed.

        The text is kept only when asked for (never for the credentials file).
        """
        key = _stat(path)
        memo = self._memo.get(path)
        if memo is None or memo[0] != key:
            data = _read_bytes(path) if key is not None else None
            if data is None:
                memo = (key, "absent", "")
            else:
                text = data.decode("utf-8", "replace") if keep_text else ""
                memo = (key, hashlib.sha256(data).hexdigest(), text)
            self._memo[path] = memo
        return memo[1], memo[2]

    def current(self) -> str:
        with self._lock:
            active_path = gcloud_active_config(self._environ)
            active_digest, active_text = self._read(active_path, keep_text=True)
            name = self._environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME") or active_text.strip()
            config_path = gcloud_config_file(name, self._environ)
            parts = [
                (self._credentials_path, self._read(self._credentials_path)[0]),
                (active_path, active_digest),
                (config_path, self._read(config_path)[0]),
            ]
        digest = hashlib.sha256()
        for path, value in parts:
            digest.update(f"{path}\0{value}\0".encode())
        return digest.hexdigest()


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None
