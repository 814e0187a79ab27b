"""``docker-credential-tokend``: docker's credential-helper protocol, spoken by the installed helper."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from tests.fakes.aws_moto import LEAKY, aws_files

from .conftest import BIN, Sandbox, Upstream

HELPER = str(BIN / "docker-credential-tokend")


def world(sandbox: Sandbox) -> tuple[Upstream, dict[str, str]]:
    gar = sandbox.upstream("gar")
    broken = sandbox.upstream("broken")
    broken.set_mode("fail")
    sandbox.write_config(
        sandbox.command_profile("gar", gar)
        + sandbox.command_profile("broken", broken)
        + "[hosts]\n"
        + '"*.pkg.dev" = "gar"\n'
        + '"ghcr.io" = { profile = "gar", username = "octocat" }\n'
        + '"broken.example" = "broken"\n'
    )
    return gar, sandbox.env(TOKEND_TIMEOUT="10")


def helper(env: dict[str, str], op: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELPER, op], input=stdin, env=env, capture_output=True, text=True, timeout=30)


def test_get_list_store_erase(sandbox: Sandbox) -> None:
    gar, env = world(sandbox)
    sandbox.start_daemon(env=env)
    got = helper(env, "get", "us-docker.pkg.dev")
    assert got.returncode == 0 and got.stderr == "", got
    assert json.loads(got.stdout) == {
        "ServerURL": "us-docker.pkg.dev",
        "Username": "oauth2accesstoken",
        "Secret": gar.tokens()[-1],
    }
    ghcr = json.loads(helper(env, "get", "https://ghcr.io").stdout)
    assert ghcr["Username"] == "octocat" and ghcr["Secret"] == gar.tokens()[-1]
    assert gar.fetches == 1

    listed = helper(env, "list")
    assert listed.returncode == 0 and json.loads(listed.stdout) == {
        "ghcr.io": "octocat",
        "broken.example": "tokend",
    }
    stored = helper(env, "store", json.dumps({"ServerURL": "ghcr.io", "Username": "u", "Secret": "s"}))
    assert stored.returncode == 0 and stored.stdout == ""
    erased = helper(env, "erase", "ghcr.io")
    assert erased.returncode == 0 and gar.fetches == 2  # a new credential for the next get
    assert helper(env, "version").stdout.startswith("docker-credential-tokend")


def test_errors_go_to_stdout(sandbox: Sandbox) -> None:
    _, env = world(sandbox)
    env["TOKEND_NO_DAEMON"] = "1"
    missing = helper(env, "get", "quay.io")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1,
        "credentials not found in native keychain\n",
        "",
    )
    failed = helper(env, "get", "broken.example")
    assert failed.returncode == 1 and failed.stderr == ""
    assert failed.stdout.startswith("tokend: broken: ") and "upstream exploded" in failed.stdout
    refused = helper(env, "store", json.dumps({"ServerURL": "quay.io", "Username": "u", "Secret": "s"}))
    assert refused.returncode == 1 and "tokend does not store credentials" in refused.stdout
    usage = subprocess.run([HELPER], env=env, capture_output=True, text=True, timeout=30)
    assert usage.returncode == 1 and usage.stdout.startswith("usage: docker-credential-tokend")



ECR_REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


class FakeEcr(BaseHTTPRequestHandler):
    """ECR's GetAuthorizationToken (JSON 1.1; moto's answer expired in 2015)."""

    calls: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakeEcr.calls.append(self.headers.get("X-Amz-Target", ""))
        token = base64.b64encode(b"AWS:ecr-password-" + secrets.token_hex(8).encode()).decode()
        body = json.dumps(
            {
                "authorizationData": [
                    {
                        "authorizationToken": token,
                        "expiresAt": time.time() + 12 * 3600,
                        "proxyEndpoint": f"https://{ECR_REGISTRY}",
                    }
                ]
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_ecr_login_from_aws_credentials(sandbox: Sandbox) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEcr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in sandbox.env().items() if k not in LEAKY}
        env.update(
            aws_files(sandbox.root, "[profile base]\nregion = us-east-1\n"),
            AWS_ENDPOINT_URL_ECR=f"http://127.0.0.1:{server.server_address[1]}",
            AWS_EC2_METADATA_DISABLED="true",
            TOKEND_NO_DAEMON="1",
        )
        sandbox.write_config(
            '[profiles.ecr]\nsource = "aws"\naws_profile = "base"\ntoken = "ecr"\nregion = "us-east-1"\n'
            '[hosts]\n"*.dkr.ecr.us-east-1.amazonaws.com" = "ecr"\n'
        )
        got = helper(env, "get", f"https://{ECR_REGISTRY}")
        assert got.returncode == 0, got
        doc = json.loads(got.stdout)
        assert doc["ServerURL"] == f"https://{ECR_REGISTRY}" and doc["Username"] == "AWS"
        assert doc["Secret"].startswith("ecr-password-")
        assert FakeEcr.calls == ["AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
