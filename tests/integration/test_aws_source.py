"""The AWS source through real ``tokend serve`` / ``tokend-print`` / ``tokend login`` processes.

STS is a moto server, the SSO portal and sso-oidc a local fake; every daemon a
test starts (directly or by autostart) is stopped by its pid by the sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, LEAKY, MotoServer, aws_files
from tests.fakes.aws_sso import FakeSso, fake_sso, sso_config
from tests.fakes.aws_sts import black_hole, denying_sts

from .conftest import TOKEND, TOKEND_PRINT, Sandbox

ROLE = f"arn:aws:iam::{ACCOUNT}:role/tokend-it"


@pytest.fixture
def sso() -> Iterator[FakeSso]:
    with fake_sso() as fake:
        yield fake


def aws_env(sandbox: Sandbox, moto: MotoServer, sso: FakeSso | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in sandbox.env().items() if k not in LEAKY}
    env.update(
        AWS_ENDPOINT_URL_STS=moto.url,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
        **aws_files(
            sandbox.root, sso_config("corp", ("dev", "prod")) + "\n[profile base]\n[profile empty]\n"
        ),
    )
    if sso is not None:
        env.update(AWS_ENDPOINT_URL_SSO=sso.url, AWS_ENDPOINT_URL_SSO_OIDC=sso.url)
    env.update(extra)
    return env


TOML = f"""
[profiles.role]
source = "aws"
aws_profile = "base"
role_arn = "{ROLE}"

[profiles.dev]
source = "aws"
aws_profile = "dev"

[profiles.prod]
source = "aws"
aws_profile = "prod"
token = "bedrock"

[profiles.empty]
source = "aws"
aws_profile = "empty"
"""


def test_aws_process_and_env_formats_from_one_fetch(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = aws_env(sandbox, moto)
    moto.reset_recording()
    r = sandbox.print_("role", "--format", "aws-process", env=env)
    assert r.status == 0, r
    doc = json.loads(r.out)
    assert set(doc) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert doc["Version"] == 1
    left = dt.datetime.fromisoformat(doc["Expiration"].replace("Z", "+00:00")).timestamp() - time.time()
    assert left > 15 * 60  # more than botocore's advisory window
    r = sandbox.print_("role", "--format", "env", env=env)
    assert r.status == 0, r
    exported = dict(line.removeprefix("export ").split("=", 1) for line in r.out.splitlines())
    assert set(exported) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    }
    assert exported["AWS_ACCESS_KEY_ID"] == doc["AccessKeyId"]
    assert exported["AWS_CREDENTIAL_EXPIRATION"] == doc["Expiration"]
    assumed = [c for c in moto.calls() if c.get("Action") == "AssumeRole"]
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID
    assert r.err == ""


def test_sso_login_once_for_many_then_served(sandbox: Sandbox, moto: MotoServer, sso: FakeSso) -> None:
    sandbox.write_config(TOML)
    env = aws_env(sandbox, moto, sso)
    before = sandbox.print_("dev", "--format", "json", env=env)
    assert before.status == 4, before
    assert before.out == ""
    assert "tokend login dev" in before.err and len(before.err_lines) == 1

    # Everyone waiting runs tokend login; dev and prod share the sso-session: one sign-in.
    logins = [[TOKEND, "login", p, "--no-browser", "--timeout", "60"] for p in ("dev", "dev", "prod", "dev")]
    results = sandbox.run_many(logins, env=env, timeout=90)
    assert [r.status for r in results] == [0, 0, 0, 0], results
    assert sso.calls["StartDeviceAuthorization"] == 1
    assert sum("user_code=" in r.err for r in results) == 1
    assert sum("signed in by a concurrent tokend login" in r.err for r in results) == 3

    after = sandbox.print_("dev", "--format", "json", env=env)
    assert after.status == 0, after
    assert json.loads(after.out)["AccessKeyId"] in sso.issued_keys
    key = sandbox.print_("prod", env=env)
    assert key.status == 0, key
    assert key.out.startswith("bedrock-api-key-")
    # The AWS CLI's cache entry, readable by the CLI and every SDK.
    cache = sandbox.home / ".aws" / "sso" / "cache"
    entries = [json.loads(p.read_text()) for p in cache.glob("*.json")]
    assert any(e.get("accessToken") in sso.valid_tokens for e in entries)


def test_expired_sso_session_asks_for_login(sandbox: Sandbox, moto: MotoServer, sso: FakeSso) -> None:
    sandbox.write_config(TOML)
    env = aws_env(sandbox, moto, sso)
    sso.write_cache(sandbox.home, session_name="corp", access_token=sso.session_token(), expires_in=-60)
    r = sandbox.print_("dev", "--format", "aws-process", env=env)
    assert r.status == 4, r
    assert r.out == ""
    assert r.err_lines == [
        "tokend: dev: the AWS SSO session has expired or was never started; run: tokend login dev"
    ]
    # A token the portal no longer accepts (signed out elsewhere) also means: log in.
    sso.write_cache(sandbox.home, session_name="corp", access_token="revoked", expires_in=3600)
    r = sandbox.tokend("get", "dev", "--format", "json", "--no-daemon", env=env)
    assert r.status == 4, r
    assert "tokend login dev" in r.err


def test_access_denied_names_the_role(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    with denying_sts() as url:
        env = aws_env(sandbox, moto, AWS_ENDPOINT_URL_STS=url)
        r = sandbox.print_("role", "--format", "aws-process", env=env)
    assert r.status == 1, r
    assert r.out == ""
    assert len(r.err_lines) == 1
    assert r.err.startswith(f"tokend: role: access denied assuming role {ROLE}")


def test_no_credentials_fails_quickly(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = aws_env(sandbox, moto)
    sandbox.start_daemon(env=env)
    r = sandbox.print_("empty", "--format", "aws-process", env=env)
    assert r.status == 1, r
    assert "no AWS credentials for aws profile 'empty'" in r.err
    assert r.elapsed < 3.5, r.elapsed  # not waiting out the 4 s deadline
    # Instance metadata that never answers (a laptop on a strange network) is bounded too.
    with black_hole() as url:
        env = aws_env(sandbox, moto, AWS_EC2_METADATA_DISABLED="false", AWS_EC2_METADATA_SERVICE_ENDPOINT=url)
        r = sandbox.tokend("get", "empty", "--no-daemon", "--format", "aws-process", env=env)
    assert r.status == 1, r
    assert r.elapsed < 4.0, r.elapsed


def test_integrate_aws_then_botocore_uses_tokend(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = aws_env(sandbox, moto)
    config = Path(env["AWS_CONFIG_FILE"])
    config.write_text("# my settings\n" + config.read_text())
    r = sandbox.tokend("integrate", "aws", "role", env=env)
    assert r.status == 0, r
    text = config.read_text()
    assert text.startswith("# my settings\n[sso-session corp]")
    assert (
        f"[profile role]\ncredential_process = {os.path.realpath(TOKEND_PRINT)} role --format aws-process\n"
        in (text)
    )
    # botocore (as every SDK and the AWS CLI) now gets tokend's credentials for that profile.
    code = (
        "import botocore.session, json\n"
        "c = botocore.session.Session(profile='role').get_credentials().get_frozen_credentials()\n"
        "print(c.access_key)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    served = json.loads(sandbox.print_("role", "--format", "aws-process", env=env).out)
    assert done.stdout.strip() == served["AccessKeyId"]
