"""``integrate claude --bedrock``: the ``awsCredentialExport`` command it writes, run as Claude Code runs it.

Claude Code runs the command with a shell and reads ``Credentials.AccessKeyId``
/ ``SecretAccessKey`` / ``SessionToken`` from its JSON output; the keys must
be the role's that tokend assumed at moto, and sign a call moto accepts.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, MotoServer

from .conftest import Sandbox
from .test_endpoints_aws import TOML, env_for, served_keys, write

SIGN = textwrap.dedent(
    """\
    import json, sys, boto3
    c = json.load(sys.stdin)["Credentials"]
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                       aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
    print(sts.get_caller_identity()["Account"])
    """
)


@pytest.mark.timeout(90)
def test_aws_credential_export_prints_the_role_keys(sandbox: Sandbox, moto: MotoServer) -> None:
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    env["CLAUDE_CONFIG_DIR"] = str(sandbox.home / ".claude")
    moto.reset_recording()
    r = sandbox.tokend("integrate", "claude", "role", "--bedrock", "--location", "us-east-1", env=env)
    assert r.status == 0, r
    settings = json.loads((sandbox.home / ".claude" / "settings.json").read_text())
    assert settings["env"] == {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": "us-east-1"}
    out = sandbox.run(["sh", "-c", settings["awsCredentialExport"]], env=env)
    assert out.status == 0 and out.err == "", out
    creds = json.loads(out.out)["Credentials"]
    assert set(creds) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    script = write(sandbox, "sign.py", SIGN)
    signed = sandbox.run([sys.executable, script], env=env, input=out.out)
    assert signed.status == 0 and signed.out.strip() == ACCOUNT, signed
    assumed, callers = served_keys(moto)
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID
    assert callers == [creds["AccessKeyId"]]
