"""Specs of ``tokend exec -e`` / ``tokend env``: which variable gets which value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokend.ci import inject
from tokend.ci.inject import Spec, Var
from tokend.core.credential import Credential
from tokend.core.errors import UsageError

AWS = Credential(
    kind="aws",
    fields={
        "AccessKeyId": "ASIAEXAMPLE0001",
        "SecretAccessKey": "s3cr3t/key+value",
        "SessionToken": "FwoG-tok",
    },
    expires_at=1_795_525_200.0,
)
BEARER = Credential.bearer("ya29.bearer-token-value", expires_at=1_795_525_200.0)
BASIC = Credential(kind="basic", fields={"username": "robot", "password": "pw-0123456789"})
CREDS = {"prod": AWS, "vertex": BEARER, "reg": BASIC}


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("TOKEN=vertex", Spec("TOKEN", "vertex")),
        ("KEY=prod:AccessKeyId", Spec("KEY", "prod", "AccessKeyId")),
        ("prod", Spec(None, "prod")),
        ("_X1=a.b@c-d", Spec("_X1", "a.b@c-d")),
    ],
)
def test_parse_spec(text: str, spec: Spec) -> None:
    assert inject.parse_spec(text) == spec


@pytest.mark.parametrize("text", ["1X=p", "X-Y=p", "X=", "X=p:", "prod:AccessKeyId", "X=/etc/passwd"])
def test_bad_specs(text: str) -> None:
    with pytest.raises(UsageError):
        inject.parse_spec(text)


def test_bare_profiles_give_the_usual_variables() -> None:
    found = inject.variables([Spec(None, "prod"), Spec(None, "vertex")], CREDS)
    assert found == [
        Var("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE0001", True),
        Var("AWS_SECRET_ACCESS_KEY", "s3cr3t/key+value", True),
        Var("AWS_SESSION_TOKEN", "FwoG-tok", True),
        Var("AWS_CREDENTIAL_EXPIRATION", "2026-11-24T13:00:00Z", False),
        Var("TOKEND_TOKEN", "ya29.bearer-token-value", True),
    ]


def test_named_variables_and_fields() -> None:
    specs = [
        Spec("TOKEN", "vertex"),
        Spec("PW", "reg"),
        Spec("USER", "reg", "username"),
        Spec("KEY_ID", "prod", "AccessKeyId"),
        Spec("UNTIL", "vertex", "expires_at"),
        Spec("T2", "vertex", "token"),
    ]
    assert [(v.name, v.value, v.secret) for v in inject.variables(specs, CREDS)] == [
        ("TOKEN", "ya29.bearer-token-value", True),
        ("PW", "pw-0123456789", True),
        ("USER", "robot", True),
        ("KEY_ID", "ASIAEXAMPLE0001", True),
        ("UNTIL", "2026-11-24T13:00:00Z", False),
        ("T2", "ya29.bearer-token-value", True),
    ]


def test_errors_say_what_to_write() -> None:
    with pytest.raises(UsageError, match=r"several values; pick one .*AccessKeyId, SecretAccessKey"):
        inject.variables([Spec("X", "prod")], CREDS)
    with pytest.raises(UsageError, match=r"no such field \(fields: token, expires_at\)"):
        inject.variables([Spec("X", "vertex", "nope")], CREDS)
    with pytest.raises(UsageError, match="TOKEND_TOKEN is set by two profiles"):
        inject.variables(
            [Spec(None, "vertex"), Spec(None, "other")], {**CREDS, "other": Credential.bearer("other-tok")}
        )


def test_secrets_to_mask_include_each_line_of_multiline_values() -> None:
    found = [Var("A", "line-one-abc\nline-two-def\nxy", True), Var("B", "2026-11-24T13:00:00Z", False)]
    assert inject.secrets(found) == ["line-one-abc\nline-two-def\nxy", "line-one-abc", "line-two-def"]


def test_fetch_goes_through_the_shared_local_cache(
    monkeypatch: pytest.MonkeyPatch, short_tmp: str
) -> None:
    root = Path(short_tmp)
    cfg = root / "config.toml"
    cfg.write_text('[profiles.a]\nsource = "env"\nvar = "TD_TEST_A"\n[profiles.b]\nsource = "demo"\n')
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    monkeypatch.setenv("XDG_RUNTIME_DIR", short_tmp)
    monkeypatch.setenv("TD_TEST_A", "value-of-a-123")
    creds = inject.fetch(["a", "b", "a"], timeout=5)
    assert set(creds) == {"a", "b"} and creds["a"].fields["value"] == "value-of-a-123"
    assert len(list((root / "tokend" / "cache").glob("*.json"))) == 2
    with pytest.raises(UsageError, match="unknown profile 'c'"):
        inject.fetch(["c"])
