"""GitHub Actions OIDC → AWS with no stored secret: real processes, moto's STS, a fake ID-token endpoint.

The job has no AWS keys, no AWS config and no daemon: ``tokend env --format
github`` asks GitHub's ID-token endpoint for a JWT (audience sts.amazonaws.com),
trades it at STS AssumeRoleWithWebIdentity (unsigned) and hands the
credentials to the next steps through ``$GITHUB_ENV``, masked in the log.
Google's workload identity federation and Azure's client assertion with the
same token are in tests/ci/test_oidc.py (their fakes need in-process routing).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator

import pytest

from tests.fakes.aws_moto import LEAKY, MotoServer
from tests.fakes.github_oidc import FakeGithubOidc, fake_github_oidc

from .conftest import Sandbox

ROLE = "arn:aws:iam::123456789012:role/gha-deploy"


@pytest.fixture
def github() -> Iterator[FakeGithubOidc]:
    with fake_github_oidc() as fake:
        yield fake


def ci_env(sandbox: Sandbox, moto: MotoServer, github: FakeGithubOidc) -> dict[str, str]:
    empty = sandbox.root / "empty"
    empty.write_text("")
    env = {k: v for k, v in sandbox.env().items() if k not in LEAKY and not k.startswith("AWS_")}
    env.update(
        github.env(),
        CI="true",
        GITHUB_ACTIONS="true",
        GITHUB_ENV=str(sandbox.root / "github_env"),
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_ENDPOINT_URL_STS=moto.url,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    sandbox.write_config(
        f'[profiles.deploy]\nsource = "aws"\noidc = "github"\nrole_arn = "{ROLE}"\nregion = "us-east-1"\n'
        'duration = "1h"\n'
    )
    return env


def test_github_oidc_to_aws_into_github_env(
    sandbox: Sandbox, moto: MotoServer, github: FakeGithubOidc
) -> None:
    env = ci_env(sandbox, moto, github)
    moto.reset_recording()
    r = sandbox.tokend("env", "deploy", "--format", "github", env=env)
    assert r.status == 0, r
    # stdout is the masks, and only them; the values go to $GITHUB_ENV.
    masked = re.findall(r"^::add-mask::(.+)$", r.out, re.M)
    assert r.out == "".join(f"::add-mask::{v}\n" for v in masked) and len(masked) == 3
    key_id, secret, session = masked
    assert key_id.startswith("ASIA")
    data = (sandbox.root / "github_env").read_bytes()
    d = re.findall(rb"<<(ghadelimiter_[0-9a-f]{32})\n", data)
    expiry = re.search(rb"AWS_CREDENTIAL_EXPIRATION<<\S+\n(\S+)\n", data)
    assert len(d) == 4 and expiry is not None
    names = (b"AWS_ACCESS_KEY_ID", b"AWS_SECRET_ACCESS_KEY", b"AWS_SESSION_TOKEN")
    names += (b"AWS_CREDENTIAL_EXPIRATION",)
    values = (key_id.encode(), secret.encode(), session.encode(), expiry.group(1))
    expected = b"".join(
        name + b"<<" + delim + b"\n" + value + b"\n" + delim + b"\n"
        for name, value, delim in zip(names, values, d, strict=True)
    )
    assert data == expected
    # The exchange: one ID token for STS's audience, traded unsigned (no AWS secret existed).
    [req] = github.requests
    assert req["audience"] == "sts.amazonaws.com" and req["authorization"] == f"bearer {github.request_token}"
    [call] = [c for c in moto.calls() if c.get("Action") == "AssumeRoleWithWebIdentity"]
    assert call["WebIdentityToken"] == github.issued[0]
    assert call["RoleArn"] == ROLE and call["RoleSessionName"] == "tokend-deploy" and call["_signer"] == ""
    assert sandbox.daemon_pids() == []
    assert github.request_token not in r.err and github.issued[0] not in r.out + r.err


def test_exec_with_the_federated_credentials_masked(
    sandbox: Sandbox, moto: MotoServer, github: FakeGithubOidc
) -> None:
    env = ci_env(sandbox, moto, github)
    code = "import os; print(os.environ['AWS_SECRET_ACCESS_KEY'], os.environ['AWS_ACCESS_KEY_ID'])"
    r = sandbox.tokend("exec", "-e", "deploy", "--mask", "--", sys.executable, "-c", code, env=env)
    assert r.status == 0, r
    assert r.out == "*** ***\n"


def test_missing_permission_names_the_ci_variable(
    sandbox: Sandbox, moto: MotoServer, github: FakeGithubOidc
) -> None:
    env = ci_env(sandbox, moto, github)
    del env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    r = sandbox.print_("deploy", "--format", "aws-process", env=env)
    assert r.status == 1 and r.out == ""
    assert r.err_lines == [
        'tokend: deploy: oidc = "github": the CI variable ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set; '
        "GitHub Actions sets it only for jobs with `permissions: id-token: write`"
    ]
    assert os.path.exists(sandbox.root / "empty") and github.requests == []
