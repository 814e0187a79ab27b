"""The daemon's environment: an allow-list, applied once at start-up.

An autostarted daemon inherits the whole environment of whichever client
started it, and every ``command`` source runs with the daemon's environment.
Without a filter a secret one caller had in its environment (say a token that
``tokend exec`` injected) would reach the helper of an unrelated profile. The
daemon keeps only what locates the user and their files, locale, proxies and
CA bundles, the variables cloud SDKs and secret stores read, tokend's own, and
what systemd hands to the service. A profile's ``env`` table still adds to this.

Variables the configuration names itself (an ``env`` source's ``var``, a
``*_env`` setting, an ``env:NAME`` reference, the CI job's ID-token variables
an ``oidc`` setting reads) are the user's explicit choice: they are kept too,
also when a reload names them later.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

#: Kept by exact name.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "TZ",
        "TMPDIR",
        # Proxies: curl and Python read the lower case, most others the upper.
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        # CA bundles.
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "KUBECONFIG",
        "DBUS_SESSION_BUS_ADDRESS",  # the Secret Service (keyring)
        # What systemd passes that the daemon itself reads (socket activation,
        # sd_notify, the watchdog, the journal stream).
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
        "INVOCATION_ID",
    }
)

#: Kept by prefix: locale, XDG directories, cloud SDKs, secret stores, tokend's own.
ALLOWED_PREFIXES = (
    "LC_",
    "XDG_",
    "GOOGLE_",
    "CLOUDSDK_",
    "GCE_",
    "AWS_",
    "AZURE_",
    "IDENTITY_",
    "MSI_",
    "VAULT_",
    "BAO_",
    "OP_",
    "TOKEND_",
)


#: What a GitHub Actions job's ID token is requested with (``oidc = "github"``).
GITHUB_OIDC = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def allowed(name: str) -> bool:
    """True when the daemon keeps the variable ``name``."""
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


#: What restrict() removed, so a variable the configuration names can be let back in.
_withheld: dict[str, str] = {}


def restrict(env: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove every variable not on the allow-list from ``env``; the names removed, sorted."""
    dropped = sorted(name for name in env if not allowed(name))
    for name in dropped:
        _withheld[name] = env.pop(name)
    return dropped


def admit(names: Iterable[str], env: MutableMapping[str, str] = os.environ) -> list[str]:
    """Put back the withheld variables among ``names``; the names put back, sorted."""
    back = sorted(name for name in set(names) if name in _withheld and name not in env)
    for name in back:
        env[name] = _withheld[name]
    return back


def named_by(profiles: Iterable[Mapping[str, Any]]) -> set[str]:
    """Variables the settings of ``profiles`` name: ``var``, ``*_env``, ``env:NAME`` values, and
    what ``oidc`` reads (GitHub's ID-token request variables, GitLab's ``VAR``)."""
    names = set()
    for options in profiles:
        for key, value in options.items():
            if not isinstance(value, str):
                continue
            if key == "var" or key.endswith("_env"):
                names.add(value)
            elif key == "oidc":
                names.update(GITHUB_OIDC if value == "github" else [value.partition(":")[2]])
            elif value.startswith("env:"):
                names.add(value[len("env:") :])
    return names - {""}
