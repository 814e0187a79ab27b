"""MFA for roles tokend assumes itself: a code typed at ``tokend login``, never during a fetch.

``tokend login`` trades the code for an MFA session (STS GetSessionToken with
the device's serial and the code) and keeps it in the OS keychain, as
aws-vault does; fetches assume the role with that session until it expires,
then ask for ``tokend login`` again.
"""

from __future__ import annotations

import json
from typing import Any

from tokend.core.errors import SourceError
from tokend.sources.aws.session import AwsCreds

KEYRING_SERVICE = "tokend-aws-mfa"


def _keyring() -> tuple[Any, Any]:
    import keyring
    import keyring.errors

    return keyring, keyring.errors


def load(identity: str) -> AwsCreds | None:
    """The MFA session stored for ``identity``, or None."""
    keyring, errors = _keyring()
    try:
        blob = keyring.get_password(KEYRING_SERVICE, identity)
    except errors.KeyringError as e:
        raise SourceError(f"keychain: {type(e).__name__}: {e}") from None
    if not blob:
        return None
    try:
        doc = json.loads(blob)
        return AwsCreds(
            access_key=doc["AccessKeyId"],
            secret_key=doc["SecretAccessKey"],
            token=doc["SessionToken"],
            expires_at=float(doc["expires_at"]),
            method="mfa-session",
        )
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: as good as absent, login replaces it


def store(identity: str, creds: AwsCreds) -> None:
    keyring, errors = _keyring()
    doc = {**creds.fields(), "expires_at": creds.expires_at}
    try:
        keyring.set_password(KEYRING_SERVICE, identity, json.dumps(doc))
    except errors.KeyringError as e:
        raise SourceError(
            f"cannot keep the MFA session in the keychain: {type(e).__name__}: {e}", retryable=False
        ) from None


def forget(identity: str) -> bool:
    keyring, errors = _keyring()
    try:
        keyring.delete_password(KEYRING_SERVICE, identity)
    except errors.PasswordDeleteError:
        return False
    except errors.KeyringError as e:
        raise SourceError(f"keychain: {type(e).__name__}: {e}") from None
    return True


def session_token(sts: Any, serial: str, code: str, duration: float) -> AwsCreds:
    """Trade an MFA code for temporary credentials that satisfy ``aws:MultiFactorAuthPresent``."""
    response = sts.get_session_token(SerialNumber=serial, TokenCode=code, DurationSeconds=int(duration))
    return AwsCreds.from_sts(response["Credentials"], "mfa-session")
