"""Renderers from a Credential to each consumer's stdout."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from tokend import formats
from tokend.core.credential import Credential
from tokend.core.errors import UsageError

EXPIRY = 1_900_000_000.0
EXPIRY_ISO = "2030-03-17T17:46:40Z"
TOKEN = "ya29.a0AfB_format-test-token"


@pytest.fixture
def bearer() -> Credential:
    return Credential.bearer(TOKEN, expires_at=EXPIRY, source="google")


@pytest.fixture
def aws() -> Credential:
    return Credential(
        kind="aws",
        fields={
            "AccessKeyId": "ASIAEXAMPLEKEYID",
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
            "SessionToken": "FwoGZXIvYXdzEXAMPLE==",
        },
        expires_at=EXPIRY,
        source="aws",
    )


@pytest.fixture
def basic() -> Credential:
    return Credential(kind="basic", fields={"username": "x-access-token", "password": "ghp_example:pw"})


def test_raw_is_token_and_one_newline(bearer: Credential) -> None:
    assert formats.render(bearer, "raw") == TOKEN + "\n"


def test_raw_is_the_default_shape_for_secrets_and_basic(basic: Credential) -> None:
    assert formats.render(Credential.secret("sk-proj-abc"), "raw") == "sk-proj-abc\n"
    assert formats.render(basic, "raw") == "ghp_example:pw\n"


def test_raw_on_aws_credential_is_usage_error(aws: Credential) -> None:
    with pytest.raises(UsageError, match="aws-process") as info:
        formats.render(aws, "raw")
    assert info.value.exit_status == 2
    for value in aws.fields.values():
        assert value not in info.value.message


@pytest.mark.parametrize("fmt", ["header", "exec-credential"])
def test_single_value_formats_on_aws_are_usage_errors(aws: Credential, fmt: str) -> None:
    with pytest.raises(UsageError):
        formats.render(aws, fmt)


def test_header_bearer(bearer: Credential) -> None:
    assert formats.render(bearer, "header") == f"Authorization: Bearer {TOKEN}\n"


def test_header_basic(basic: Credential) -> None:
    out = formats.render(basic, "header")
    assert out.startswith("Authorization: Basic ") and out.endswith("\n")
    encoded = out.removeprefix("Authorization: Basic ").strip()
    # the password may contain a colon: only the first one separates the user
    assert base64.b64decode(encoded).decode() == "x-access-token:ghp_example:pw"


def test_json_bearer(bearer: Credential) -> None:
    out = formats.render(bearer, "json")
    assert out.endswith("}\n") and out.count("\n") == 1
    assert json.loads(out) == {"kind": "bearer", "token": TOKEN, "expires_at": EXPIRY_ISO}


def test_json_aws_and_no_expiry(aws: Credential) -> None:
    doc = json.loads(formats.render(aws, "json"))
    assert doc["kind"] == "aws"
    assert doc["AccessKeyId"] == "ASIAEXAMPLEKEYID"
    assert doc["SessionToken"] == "FwoGZXIvYXdzEXAMPLE=="
    assert "token" not in doc
    assert doc["expires_at"] == EXPIRY_ISO
    secret = json.loads(formats.render(Credential.secret("sk-proj-abc"), "json"))
    assert secret == {"kind": "secret", "value": "sk-proj-abc", "token": "sk-proj-abc", "expires_at": None}


def shell_eval(script: str, var: str) -> str:
    """What a POSIX shell gets in ``var`` after ``eval "$(tokend get --format env)"``."""
    done = subprocess.run(
        ["/bin/sh", "-c", f'eval "$1"; printf %s "${var}"', "sh", script],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return done.stdout


def test_env_bearer(bearer: Credential) -> None:
    assert formats.render(bearer, "env") == f"export TOKEND_TOKEN={TOKEN}\n"


def test_env_quotes_values_for_the_shell() -> None:
    nasty = """it's a "quoted" value with spaces; $(echo injected) `echo x` $HOME \\ end"""
    out = formats.render(Credential.secret(nasty), "env")
    assert out.startswith("export TOKEND_SECRET=") and out.endswith("\n")
    assert shell_eval(out, "TOKEND_SECRET") == nasty


def test_env_aws(aws: Credential) -> None:
    out = formats.render(aws, "env")
    lines = out.splitlines()
    assert lines == [
        "export AWS_ACCESS_KEY_ID=ASIAEXAMPLEKEYID",
        "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
        "export AWS_SESSION_TOKEN=FwoGZXIvYXdzEXAMPLE==",
        f"export AWS_CREDENTIAL_EXPIRATION={EXPIRY_ISO}",
    ]
    assert shell_eval(out, "AWS_SESSION_TOKEN") == "FwoGZXIvYXdzEXAMPLE=="


def test_env_basic(basic: Credential) -> None:
    out = formats.render(basic, "env")
    assert shell_eval(out, "TOKEND_USERNAME") == "x-access-token"
    assert shell_eval(out, "TOKEND_PASSWORD") == "ghp_example:pw"


def test_aws_process_shape(aws: Credential) -> None:
    out = formats.render(aws, "aws-process")
    assert out.endswith("\n")
    assert json.loads(out) == {
        "Version": 1,
        "AccessKeyId": "ASIAEXAMPLEKEYID",
        "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
        "SessionToken": "FwoGZXIvYXdzEXAMPLE==",
        "Expiration": EXPIRY_ISO,
    }


def test_aws_process_long_term_keys_have_no_expiration() -> None:
    cred = Credential(kind="aws", fields={"AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "secretkey"})
    doc = json.loads(formats.render(cred, "aws-process"))
    assert doc == {"Version": 1, "AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "secretkey"}


def test_aws_process_needs_aws(bearer: Credential) -> None:
    with pytest.raises(UsageError, match="aws-process"):
        formats.render(bearer, "aws-process")


def test_aws_sts_is_what_claude_code_reads_from_aws_credential_export(aws: Credential) -> None:
    doc = json.loads(formats.render(aws, "aws-sts"))
    assert doc == {
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLEKEYID",
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
            "SessionToken": "FwoGZXIvYXdzEXAMPLE==",
            "Expiration": EXPIRY_ISO,
        }
    }
    assert formats.min_ttl("aws-sts", None, 60.0) == 16 * 60.0
    with pytest.raises(UsageError, match="aws-sts"):
        formats.render(Credential.bearer(TOKEN, expires_at=EXPIRY, source="google"), "aws-sts")


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_exec_credential_echoes_api_version(bearer: Credential, version: str) -> None:
    api = f"client.authentication.k8s.io/{version}"
    info = json.dumps({"kind": "ExecCredential", "apiVersion": api, "spec": {"interactive": False}})
    doc = json.loads(formats.render(bearer, "exec-credential", {"exec_info": info}))
    assert doc == {
        "apiVersion": api,
        "kind": "ExecCredential",
        "status": {"token": TOKEN, "expirationTimestamp": EXPIRY_ISO},
    }


def test_exec_credential_without_exec_info_uses_v1beta1(bearer: Credential) -> None:
    doc = json.loads(formats.render(bearer, "exec-credential"))
    assert doc["apiVersion"] == "client.authentication.k8s.io/v1beta1"


def test_exec_credential_without_expiry() -> None:
    doc = json.loads(formats.render(Credential.secret("static-k8s-token"), "exec-credential"))
    assert doc["status"] == {"token": "static-k8s-token"}


@pytest.mark.parametrize(
    "info",
    [
        '{"apiVersion": "client.authentication.k8s.io/v1alpha1"}',
        '{"apiVersion": "example.com/v1"}',
        '{"apiVersion": 1}',
        "{not json",
        "[1, 2]",
    ],
)
def test_exec_credential_rejects_unknown_api_versions(bearer: Credential, info: str) -> None:
    with pytest.raises(UsageError):
        formats.render(bearer, "exec-credential", {"exec_info": info})


def test_unknown_format(bearer: Credential) -> None:
    with pytest.raises(UsageError, match="unknown format 'yaml'") as info:
        formats.render(bearer, "yaml")
    assert "raw" in info.value.message and "exec-credential" in info.value.message
    with pytest.raises(UsageError):
        formats.check("RAW")
    formats.check("aws-process")


def test_every_documented_format_exists() -> None:
    assert set(formats.RENDERERS) == {
        "raw",
        "json",
        "header",
        "env",
        "aws-process",
        "aws-sts",
        "exec-credential",
    }


def test_min_ttl_floor_for_aws_process() -> None:
    # botocore refetches credential_process output with less than 15 min left
    assert formats.min_ttl("aws-process", None, 300.0) == 16 * 60.0
    assert formats.min_ttl("aws-process", 60.0, 300.0) == 16 * 60.0
    assert formats.min_ttl("aws-process", None, 3600.0) == 3600.0
    assert formats.min_ttl("aws-process", 1800.0, 300.0) == 1800.0


@pytest.mark.parametrize("fmt", ["raw", "json", "header", "env", "exec-credential"])
def test_min_ttl_unchanged_for_other_formats(fmt: str) -> None:
    assert formats.min_ttl(fmt, None, 300.0) is None
    assert formats.min_ttl(fmt, 42.0, 300.0) == 42.0


def test_git_credential_lines_by_kind(bearer: Credential, aws: Credential) -> None:
    git = formats.HELPER_RENDERERS["git-credential"]
    assert git(bearer, {"host": "us-docker.pkg.dev"}) == (
        f"username=oauth2accesstoken\npassword={TOKEN}\npassword_expiry_utc={int(EXPIRY)}\n"
    )
    basic = Credential(kind="basic", fields={"username": "robot", "password": "pw-123456"})
    assert git(basic, {"host": "git.example.com"}) == "username=robot\npassword=pw-123456\n"
    assert git(basic, {"host": "git.example.com", "username": "ci"}).startswith("username=ci\n")
    secret = Credential.secret("s3cr3t-value")
    assert git(secret, {"host": "elsewhere.example"}) == "username=tokend\npassword=s3cr3t-value\n"
    with pytest.raises(formats.NotAPassword, match=r'gives aws credentials.*token = "ecr"') as err:
        git(aws, {"host": "x.example"})
    assert err.value.exit_status == 1 and "ASIAEXAMPLEKEYID" not in err.value.line()


def test_docker_credential_json(bearer: Credential) -> None:
    out = formats.HELPER_RENDERERS["docker-credential"](bearer, {"host": "ghcr.io", "server": "https://ghcr.io"})
    assert out.endswith("\n")
    assert json.loads(out) == {"ServerURL": "https://ghcr.io", "Username": "x-access-token", "Secret": TOKEN}


@pytest.mark.parametrize("bad", ["a\nhost=evil.example", "a\tb", "a\rb", "a\x00b", "a\x7fb"])
@pytest.mark.parametrize("fmt", ["git-credential", "docker-credential"])
def test_helper_formats_refuse_control_characters(fmt: str, bad: str) -> None:
    render = formats.HELPER_RENDERERS[fmt]
    with pytest.raises(formats.NotAPassword, match="control character"):
        render(Credential.bearer(bad), {"host": "x.example"})
    basic = Credential(kind="basic", fields={"username": bad, "password": "pw"})
    with pytest.raises(formats.NotAPassword, match="control character"):
        render(basic, {"host": "x.example"})


def test_helper_formats_are_not_get_formats(bearer: Credential) -> None:
    with pytest.raises(UsageError, match="unknown format"):
        formats.render(bearer, "git-credential")
