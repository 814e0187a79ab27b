"""``aws-secretsmanager`` / ``aws-ssm`` through real ``tokend serve`` and ``tokend-print``, against moto."""

from __future__ import annotations

import time

import boto3
import pytest

from tests.fakes.aws_moto import LEAKY, MotoServer, aws_files

from .conftest import Sandbox


@pytest.mark.timeout(90)
def test_secrets_manager_and_ssm_through_the_daemon(sandbox: Sandbox, moto: MotoServer) -> None:
    kw = {
        "endpoint_url": moto.url,
        "region_name": "us-east-1",
        "aws_access_key_id": "moto",
        "aws_secret_access_key": "moto",
    }
    sm, ssm = boto3.client("secretsmanager", **kw), boto3.client("ssm", **kw)
    sm.create_secret(Name="it/openai", SecretString='{"api_key": "sk-aws-it-0001"}')
    ssm.put_parameter(Name="/it/anthropic", Value="sk-ssm-it-0001", Type="SecureString", Overwrite=True)
    sandbox.write_config(
        """
        [profiles.openai]
        source = "aws-secretsmanager"
        aws_profile = "base"
        secret_id = "it/openai"
        json_key = "api_key"
        ttl = "1s"

        [profiles.anthropic]
        source = "aws-ssm"
        aws_profile = "base"
        name = "/it/anthropic"

        [profiles.missing]
        source = "aws-secretsmanager"
        aws_profile = "base"
        secret_id = "it/nothing"
        """
    )
    env = {k: v for k, v in sandbox.env().items() if k not in LEAKY}
    env.update(aws_files(sandbox.root, "[profile base]\nregion = us-east-1\n"))
    env.update(AWS_ENDPOINT_URL=moto.url, AWS_EC2_METADATA_DISABLED="true")
    daemon = sandbox.start_daemon(env=env)

    r = sandbox.print_("openai", env=env)
    assert (r.status, r.out, r.err) == (0, "sk-aws-it-0001\n", ""), r
    r = sandbox.print_("anthropic", env=env)
    assert (r.status, r.out) == (0, "sk-ssm-it-0001\n"), r

    sm.put_secret_value(SecretId="it/openai", SecretString='{"api_key": "sk-aws-it-0002"}')
    deadline = time.monotonic() + 15
    while sandbox.print_("openai", env=env).out != "sk-aws-it-0002\n":
        assert time.monotonic() < deadline, "the rotated secret never arrived"
        time.sleep(0.2)
    assert sandbox.profile_status("openai")["rotations"] == 1

    gone = sandbox.print_("missing", env=env)
    assert gone.status == 1 and gone.out == ""
    assert gone.err_lines == ["tokend: missing: secret 'it/nothing' not found"]
    daemon.stop()
    assert "sk-aws-it" not in daemon.log_text() and "sk-ssm-it" not in daemon.log_text()
