"""Google workload identity federation: a CI job's OIDC token exchanged through Google's STS.

google-auth reads the subject token from a file or a URL, not from memory,
so the ``external_account`` credentials live, 0600, in the runtime directory
only while one fetch runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator

from tokend.client import paths
from tokend.core.errors import ConfigError

GOOGLE_STS_URL = "https://sts.googleapis.com/v1/token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"

_PROVIDER = re.compile(r"projects/[^/]+/locations/[^/]+/workloadIdentityPools/[^/]+/providers/[^/]+")


def google_provider(value: str, profile: str) -> str:
    """``projects/N/locations/global/workloadIdentityPools/P/providers/X`` (a full
    ``//iam.googleapis.com/…`` name is accepted too)."""
    name = value.removeprefix("//iam.googleapis.com/").removeprefix("https://iam.googleapis.com/")
    if not _PROVIDER.fullmatch(name):
        raise ConfigError(
            f"profiles.{profile}.workload_identity_provider: expected "
            "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
            profile=profile,
        )
    return name


def google_audience(provider: str) -> str:
    """The ID-token audience google-github-actions/auth requests for a provider."""
    return "https://iam.googleapis.com/" + provider


@contextlib.contextmanager
def google_credentials_file(provider: str, token: str, *, rundir: str | None = None) -> Iterator[str]:
    """An ``external_account`` credentials file whose subject token is ``token``.

    Both files live, 0600, in the runtime directory only while one fetch runs
    (google-auth reads the subject token from a file or a URL, not from memory).
    """
    from tokend.client.rundir import prepare_dir

    directory = os.path.join(rundir or paths.runtime_dir(), "oidc")
    prepare_dir(os.path.dirname(directory))
    prepare_dir(directory)
    made: list[str] = []
    try:
        token_path = _private_file(directory, token, made)
        info = {
            "type": "external_account",
            "audience": "//iam.googleapis.com/" + provider,
            "subject_token_type": JWT_TYPE,
            "token_url": GOOGLE_STS_URL,
            "credential_source": {"file": token_path, "format": {"type": "text"}},
        }
        yield _private_file(directory, json.dumps(info), made)
    finally:
        for path in made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _private_file(directory: str, text: str, made: list[str]) -> str:
    import tempfile

    fd, path = tempfile.mkstemp(dir=directory, prefix="oidc-")  # created 0600
    made.append(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path
