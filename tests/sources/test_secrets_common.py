"""The pieces every secrets-manager source shares: json_key, fields to kinds, ``via`` profiles,
rotations in ``tokend status``."""

from __future__ import annotations

import json

import pytest

from tokend.cli.control import render_status
from tokend.core import config
from tokend.core.errors import ConfigError, LoginRequired, SourceError
from tokend.sources import registry, secretvalue

SECRETS_SOURCES = (
    "aws-secretsmanager",
    "aws-ssm",
    "gcp-secretmanager",
    "azure-keyvault",
    "vault",
    "1password",
)


@pytest.mark.parametrize("name", SECRETS_SOURCES)
def test_registered_with_json_key_and_ttl(name: str) -> None:
    cls = registry.lookup(name)
    assert cls is not None and cls.name == name
    assert cls.options["json_key"] is secretvalue.JSON_KEY_OPTION
    assert cls.options["ttl"].default == 3600.0


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("api_key", "top"),
        ("nested.key", "deep"),
        ("dotted.name", "whole-key-wins"),
        ("list.1", "second"),
        ("list.0.x", "in-list"),
        ("number", "42"),
        ("flag", "true"),
    ],
)
def test_json_key_paths(key: str, expected: str) -> None:
    doc = {
        "api_key": "top",
        "nested": {"key": "deep"},
        "dotted.name": "whole-key-wins",
        "dotted": {"name": "shadowed"},
        "list": [{"x": "in-list"}, "second"],
        "number": 42,
        "flag": True,
    }
    assert secretvalue.pick(json.dumps(doc), key, "secret 'x'") == expected


def test_json_key_errors_never_show_values() -> None:
    text = json.dumps({"a": {"b": {"c": "sekrit-value"}}, "empty": "", "z": None})
    for key, message in (
        ("a.x", "secret 'x' has no field 'a.x' (fields under 'a': b)"),
        ("a.b", "secret 'x': json_key 'a.b' names an object or a list, not a value"),
        ("empty", "secret 'x': json_key 'empty' names an empty string, not a value"),
        ("z", "secret 'x': json_key 'z' names null, not a value"),
        ("a.b.c.d", "secret 'x' has no field 'a.b.c.d' (stopped at 'a.b.c')"),
    ):
        with pytest.raises(SourceError) as info:
            secretvalue.pick(text, key, "secret 'x'")
        assert info.value.message == message and not info.value.retryable
    with pytest.raises(SourceError) as info:
        secretvalue.pick("not json sekrit-value", "a", "secret 'x'")
    assert "sekrit" not in info.value.message
    assert secretvalue.pick("plain", None, "x") == "plain"


def test_fields_to_kinds() -> None:
    aws = {"access_key": "AKIA1", "secret_key": "s1", "security_token": "t1", "arn": "arn"}
    assert secretvalue.from_fields(aws, json_key=None, kind="auto", what="w") == (
        "aws",
        {"AccessKeyId": "AKIA1", "SecretAccessKey": "s1", "SessionToken": "t1"},
    )
    no_token = {"access_key": "AKIA1", "secret_key": "s1", "security_token": None}
    assert secretvalue.from_fields(no_token, json_key=None, kind="auto", what="w")[1] == {
        "AccessKeyId": "AKIA1",
        "SecretAccessKey": "s1",
    }
    db = {"username": "u", "password": "p", "ttl": 3600}
    assert secretvalue.from_fields(db, json_key=None, kind="auto", what="w") == (
        "basic",
        {"username": "u", "password": "p"},
    )
    assert secretvalue.from_fields(db, json_key="password", kind="auto", what="w") == (
        "secret",
        {"value": "p"},
    )
    assert secretvalue.from_fields({"token": "t"}, json_key=None, kind="auto", what="w") == (
        "secret",
        {"value": "t"},
    )
    with pytest.raises(SourceError, match="has no username and password"):
        secretvalue.from_fields({"token": "t"}, json_key=None, kind="basic", what="w")
    with pytest.raises(SourceError, match="has no access_key and secret_key"):
        secretvalue.from_fields(db, json_key=None, kind="aws", what="w")


def test_reprofiled_keeps_kind_and_retryability() -> None:
    err = secretvalue.reprofiled(LoginRequired("run: tokend login g", profile="g"), "s", "google profile 'g'")
    assert (
        isinstance(err, LoginRequired) and err.line() == "tokend: s: google profile 'g': run: tokend login g"
    )
    err = secretvalue.reprofiled(SourceError("boom", retryable=False), "s", "via")
    assert isinstance(err, SourceError) and not err.retryable and err.profile == "s"


# -- via = "PROFILE" --------------------------------------------------------------------------------


def test_via_links_the_profile_and_checks_it() -> None:
    cfg = config.parse(
        '[profiles.s]\nsource = "gcp-secretmanager"\nname = "projects/p/secrets/s"\nvia = "g"\n'
        '[profiles.g]\nsource = "google"\nquota_project = "q"\n',  # defined after its user
        None,
    )
    via = cfg.profile("s").options["via"]
    assert via is cfg.profile("g") and via.options["quota_project"] == "q"
    with pytest.raises(ConfigError, match=r"profiles.s.via: no profile named 'g'"):
        config.parse(
            '[profiles.s]\nsource = "azure-keyvault"\nvault_url = "https://k.vault.azure.net"\n'
            'name = "n"\nvia = "g"\n',
            None,
        )
    with pytest.raises(ConfigError, match=r"profile 's' has source 'azure-keyvault'"):
        config.parse(
            '[profiles.s]\nsource = "azure-keyvault"\nvault_url = "https://k.vault.azure.net"\n'
            'name = "n"\nvia = "s"\n',
            None,
        )


# -- status ---------------------------------------------------------------------------------------------


def test_status_shows_rotations() -> None:
    doc = {
        "pid": 1,
        "socket": "/run/user/1/tokend/tokend.sock",
        "config": "/c",
        "profiles": [
            {
                "profile": "openai",
                "source": "vault",
                "state": "fresh",
                "hits": 3,
                "fetches": 4,
                "rotations": 2,
            },
            {"profile": "idle", "source": "1password", "state": "idle", "hits": 0, "fetches": 0},
        ],
    }
    lines = render_status(doc, 0.0).splitlines()
    header = lines[4].split()
    assert header[-4:] == ["FETCHES", "ROTATIONS", "LAST", "ERROR"]
    assert lines[5].split()[-1] == "2" and lines[6].split()[-1] == "0"
