"""The immutable Credential snapshot."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tokend.core.credential import KINDS, PUBLIC_FIELDS, Credential, utc

TOKEN = "ya29.credential-test-token-value"
EXPIRY = 1_900_000_000.0  # 2030-03-17T17:46:40Z


def aws(**extra: str) -> Credential:
    fields = {"AccessKeyId": "AKIAEXAMPLEKEY", "SecretAccessKey": "s3cr3t/access/key", **extra}
    return Credential(kind="aws", fields=fields, expires_at=EXPIRY, source="aws")


def test_fields_cannot_be_reassigned() -> None:
    cred = Credential.bearer(TOKEN, expires_at=EXPIRY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cred.expires_at = EXPIRY + 3600  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cred.kind = "secret"  # type: ignore[misc]


def test_field_mapping_cannot_be_mutated() -> None:
    cred = Credential.bearer(TOKEN)
    with pytest.raises(TypeError):
        cred.fields["token"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        cred.extra["k"] = "v"  # type: ignore[index]


def test_credential_copies_the_fields_it_is_given() -> None:
    fields = {"token": TOKEN}
    cred = Credential(kind="bearer", fields=fields)
    fields["token"] = "mutated-afterwards"
    assert cred.fields["token"] == TOKEN
    assert cred.primary == TOKEN


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="unknown credential kind 'cookie'"):
        Credential(kind="cookie", fields={"token": TOKEN})


@pytest.mark.parametrize(
    ("kind", "fields", "missing"),
    [
        ("bearer", {}, "token"),
        ("bearer", {"token": ""}, "token"),
        ("secret", {"token": TOKEN}, "value"),
        ("basic", {"username": "bob"}, "password"),
        ("basic", {"password": "hunter22"}, "username"),
        ("aws", {"AccessKeyId": "AKIAEXAMPLEKEY"}, "SecretAccessKey"),
        ("aws", {"SecretAccessKey": "s3cr3t"}, "AccessKeyId"),
    ],
)
def test_required_fields_per_kind(kind: str, fields: dict[str, str], missing: str) -> None:
    with pytest.raises(ValueError, match=f"{kind} credential lacks {missing}"):
        Credential(kind=kind, fields=fields)


def test_every_kind_has_required_fields_that_suffice() -> None:
    samples = {
        "bearer": {"token": TOKEN},
        "secret": {"value": "opaque-secret-value"},
        "basic": {"username": "bob", "password": "hunter22"},
        "aws": {"AccessKeyId": "AKIAEXAMPLEKEY", "SecretAccessKey": "s3cr3t"},
    }
    assert set(samples) == set(KINDS)
    for kind, fields in samples.items():
        assert Credential(kind=kind, fields=fields).kind == kind


def test_primary_value_per_kind() -> None:
    assert Credential.bearer(TOKEN).primary == TOKEN
    assert Credential.secret("opaque-secret-value").primary == "opaque-secret-value"
    assert Credential(kind="basic", fields={"username": "bob", "password": "hunter22"}).primary == "hunter22"
    assert aws().primary is None


def test_repr_never_shows_values() -> None:
    creds = [
        Credential.bearer(TOKEN, expires_at=EXPIRY, source="google"),
        Credential(kind="basic", fields={"username": "bob-the-user", "password": "hunter22-pw"}),
        aws(SessionToken="FwoGZXIvYXdzsession"),
    ]
    for cred in creds:
        text = repr(cred) + str(cred)
        for value in cred.fields.values():
            assert value not in text
        for name in cred.fields:
            assert name in text  # the field names are fine and useful
    assert "2030-03-17T17:46:40Z" in repr(creds[0])


def test_secret_values_exclude_identifiers() -> None:
    cred = aws(SessionToken="FwoGZXIvYXdzsession")
    assert sorted(cred.secret_values()) == sorted(["s3cr3t/access/key", "FwoGZXIvYXdzsession"])
    basic = Credential(kind="basic", fields={"username": "bob", "password": "hunter22"})
    assert basic.secret_values() == ["hunter22"]
    bearer = Credential(kind="bearer", fields={"token": TOKEN, "token_type": "Bearer"})
    assert bearer.secret_values() == [TOKEN]
    assert {"AccessKeyId", "username", "token_type"} <= PUBLIC_FIELDS


def test_secret_values_skip_empty_fields() -> None:
    cred = aws(SessionToken="")
    assert "" not in cred.secret_values()


def test_remaining_and_expiry() -> None:
    cred = Credential.bearer(TOKEN, expires_at=EXPIRY)
    assert cred.remaining(EXPIRY - 90) == 90
    assert cred.remaining(EXPIRY + 5) == -5
    assert cred.expires_iso() == "2030-03-17T17:46:40Z"
    never = Credential.secret("opaque-secret-value")
    assert never.remaining(EXPIRY) is None
    assert never.expires_iso() is None


def test_utc_is_aware() -> None:
    when = utc(EXPIRY)
    assert when.tzinfo is not None
    assert when == dt.datetime(2030, 3, 17, 17, 46, 40, tzinfo=dt.timezone.utc)


def test_equal_snapshots_compare_equal() -> None:
    a = Credential.bearer(TOKEN, expires_at=EXPIRY, issued_at=1.0)
    b = Credential.bearer(TOKEN, expires_at=EXPIRY, issued_at=1.0)
    assert a == b
    assert a != Credential.bearer(TOKEN + "x", expires_at=EXPIRY, issued_at=1.0)
