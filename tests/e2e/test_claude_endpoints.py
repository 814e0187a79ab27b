"""The real Claude Code on Vertex AI with what ``tokend integrate claude --vertex`` writes.

Claude Code reads ``CLAUDE_CODE_USE_VERTEX``, the region, the project and
``GCE_METADATA_HOST`` from the ``env`` block of its settings.json, asks the
daemon's google endpoint for a token through google-auth-library's default
chain, and calls a fake Vertex AI that answers only the token tokend fetched
from the fake Google. Claude Code comes from ``.cache/claude-code`` (installed
by scripts/test); the test is required (TOKEND_REQUIRE_E2E=1) where
scripts/test installs it.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.e2e.clients import CLAUDE_OFFLINE, run_client
from tests.fakes.anthropic_vertex import FakeVertexAnthropic
from tests.fakes.aws_moto import BASE_KEY_ID, MotoServer
from tests.fakes.bedrock_runtime import FakeBedrockRuntime
from tests.fakes.google import FakeGoogle
from tests.integration.conftest import Sandbox
from tests.integration.test_endpoints_aws import TOML as AWS_TOML
from tests.integration.test_endpoints_aws import env_for as aws_env_for
from tests.integration.test_endpoints_security import setup_google_azure

OFFLINE = CLAUDE_OFFLINE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
def test_claude_code_on_vertex_gets_its_token_from_the_daemon(
    claude: str, sandbox: Sandbox, google: FakeGoogle
) -> None:
    env = setup_google_azure(sandbox, google)
    port = _free_port()
    sandbox.write_config(
        sandbox.config_path.read_text() + f'\n[endpoints]\ngoogle = "vertex"\nports = {{ google = {port} }}\n'
    )
    sandbox.start_daemon(env)
    env["CLAUDE_CONFIG_DIR"] = str(sandbox.home / ".claude")
    r = sandbox.tokend("integrate", "claude", "vertex", "--vertex", "--location", "us-east5", env=env)
    assert r.status == 0, r
    settings = json.loads((sandbox.home / ".claude" / "settings.json").read_text())
    assert settings["env"]["GCE_METADATA_HOST"] == f"127.0.0.1:{port}"
    # Only what Claude Code itself needs: no Google variable, no ADC file, no gcloud config.
    cmd_env = {
        k: v for k, v in env.items() if not k.startswith(("ANTHROPIC_", "GOOGLE_", "CLOUDSDK_", "GCE_"))
    }
    work = sandbox.root / "work"
    work.mkdir()
    with FakeVertexAnthropic(google.tokens) as vertex:
        cmd_env.update(OFFLINE, ANTHROPIC_VERTEX_BASE_URL=vertex.base_url, NO_PROXY="127.0.0.1,localhost")
        proc = run_client(
            [claude, "-p", "hi", "--model", "claude-sonnet-4-5", "--max-turns", "1"], cmd_env, work
        )
        seen = list(vertex.seen)
    assert proc.returncode == 0, (proc.stdout[-1000:], proc.stderr[-2000:], seen)
    assert "pong from vertex" in proc.stdout
    served = [s for s in seen if s.status == 200]
    assert served and all(s.key == google.tokens()[0] for s in served), seen
    assert "/projects/proj/locations/us-east5/publishers/anthropic/models/" in served[0].path
    assert len(google.tokens()) == 1  # the daemon's one fetch
    rows = sandbox.status(env)["endpoints"]
    assert isinstance(rows, list) and rows[0]["cloud"] == "google" and rows[0]["requests"] >= 1


@pytest.mark.timeout(180)
def test_claude_code_on_bedrock_signs_with_the_keys_tokend_served(
    claude: str, sandbox: Sandbox, moto: MotoServer
) -> None:
    sandbox.write_config(AWS_TOML)
    env = aws_env_for(sandbox, moto)
    env["CLAUDE_CONFIG_DIR"] = str(sandbox.home / ".claude")
    moto.reset_recording()
    sandbox.start_daemon(env)
    r = sandbox.tokend("integrate", "claude", "role", "--bedrock", "--location", "us-east-1", env=env)
    assert r.status == 0, r
    export = json.loads((sandbox.home / ".claude" / "settings.json").read_text())["awsCredentialExport"]
    # The keys tokend serves (the role's, from the daemon's cache): the only ones the fake accepts.
    printed = sandbox.run(["sh", "-c", export], env=env)
    assert printed.status == 0, printed
    served = json.loads(printed.out)["Credentials"]
    secrets_ = {served["AccessKeyId"]: served["SecretAccessKey"]}
    # Claude Code sees no AWS variable of the user's: its keys can only come from awsCredentialExport.
    cmd_env = {k: v for k, v in env.items() if not k.startswith(("ANTHROPIC_", "AWS_"))}
    work = sandbox.root / "work"
    work.mkdir()
    with FakeBedrockRuntime(secrets_.get) as bedrock:
        cmd_env.update(OFFLINE, ANTHROPIC_BEDROCK_BASE_URL=bedrock.url, NO_PROXY="127.0.0.1,localhost")
        proc = run_client(
            [
                claude,
                "-p",
                "hi",
                "--model",
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "--max-turns",
                "1",
            ],
            cmd_env,
            work,
        )
        seen = list(bedrock.seen)
    assert proc.returncode == 0, (proc.stdout[-1000:], proc.stderr[-2000:], seen)
    assert "pong from bedrock" in proc.stdout
    assert any(s.path.endswith("/invoke-with-response-stream") and s.status == 200 for s in seen), seen
    assert all(s.key == served["AccessKeyId"] for s in seen), seen  # every request signed with tokend's keys
    assumed = [c for c in moto.calls() if c.get("Action") == "AssumeRole"]
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID
    assert served["AccessKeyId"] != BASE_KEY_ID


def test_fake_bedrock_checks_the_signature() -> None:
    """The fake's SigV4 check accepts botocore's signature and only with the right secret."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from tests.fakes.bedrock_runtime import signature_ok

    body = b'{"max_tokens": 1}'
    url = "http://127.0.0.1:4000/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("ASIAGOOD", "good-secret", "tok"), "bedrock", "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:4000"  # botocore signs it from the URL; the HTTP client sends it
    path = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
    assert signature_ok("POST", path, "", headers, body, {"ASIAGOOD": "good-secret"}.get) == "ASIAGOOD"
    assert signature_ok("POST", path, "", headers, body, {"ASIAGOOD": "other"}.get) is None
    assert signature_ok("POST", path, "", headers, body + b" ", {"ASIAGOOD": "good-secret"}.get) is None
