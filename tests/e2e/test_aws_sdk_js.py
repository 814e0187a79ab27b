"""The AWS SDK for JavaScript v3 under ``tokend exec --endpoint aws=PROFILE``, against moto.

A Node script makes an ``STSClient`` with no credentials of its own and calls
GetCallerIdentity; the SDK's default chain (``fromNodeProviderChain``) must end
in its container-credentials provider (@aws-sdk/credential-provider-http),
which accepts a ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` only on a loopback host
and sends ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (the endpoint answers nothing
without it). The user's ``[default]`` keys, ``AWS_PROFILE`` and
``AWS_ACCESS_KEY_ID`` are planted (tests.integration.test_endpoints_aws) and must
lose. The SDK comes from ``.cache/aws-sdk-js`` (installed by scripts/test); the
test is required (TOKEND_REQUIRE_E2E=1) where scripts/test installs it.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from tests.e2e.clients import in_cache
from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, MotoServer
from tests.integration.conftest import TOKEND, Sandbox
from tests.integration.test_endpoints_aws import DEFAULT_KEY, ENV_KEY, ROLE, TOML, env_for

#: argv[2]: the directory whose node_modules holds @aws-sdk/client-sts.
SCRIPT = textwrap.dedent(
    """\
    import { createRequire } from "node:module";
    const require = createRequire(process.argv[2] + "/");
    const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");
    const client = new STSClient({ maxAttempts: 2 });
    const ident = await client.send(new GetCallerIdentityCommand({}));
    const creds = await client.config.credentials();
    console.log(JSON.stringify({
      account: ident.Account,
      arn: ident.Arn,
      key: creds.accessKeyId,
      expiration: creds.expiration ? creds.expiration.toISOString() : null,
      region: await client.config.region(),
    }));
    """
)


@pytest.fixture(scope="module")
def sdk_dir() -> str:
    package = in_cache("aws-sdk-js/node_modules/@aws-sdk/client-sts/package.json", "@aws-sdk/client-sts")
    return str(package.parents[3])


@pytest.mark.timeout(120)
def test_node_sdk_v3_signs_with_the_keys_the_endpoint_served(
    sdk_dir: str, sandbox: Sandbox, moto: MotoServer
) -> None:
    sandbox.write_config(TOML)
    env = env_for(sandbox, moto)
    moto.reset_recording()
    script = sandbox.root / "caller.mjs"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [TOKEND, "exec", "--endpoint", "aws=role", "--", "node", str(script), sdk_dir],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (proc.stdout[-1000:], proc.stderr[-2000:])
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["account"] == ACCOUNT
    assert doc["arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE.rsplit('/', 1)[1]}/")
    assert doc["key"] not in (BASE_KEY_ID, DEFAULT_KEY, ENV_KEY) and doc["key"].startswith("ASIA")
    assert doc["expiration"] is not None  # read from the endpoint's Expiration
    assert doc["region"] == "eu-west-3"  # CMD's private config kept the user's region
    calls = moto.calls()
    assumed = [c for c in calls if c.get("Action") == "AssumeRole"]
    callers = [c["_signer"] for c in calls if c.get("Action") == "GetCallerIdentity"]
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID  # tokend's one fetch
    assert callers == [doc["key"]]
