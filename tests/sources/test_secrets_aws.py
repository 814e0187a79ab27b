"""``aws-secretsmanager`` and ``aws-ssm`` with real botocore against a moto server.

Profiles are routed with AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE and
AWS_ENDPOINT_URL; what moto does not play (AccessDenied, a 5xx, a hang) comes
from small local endpoints speaking the same JSON protocol.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import FakeClock
from tests.fakes.aws_moto import BASE_KEY_ID, LEAKY, MotoServer, aws_files, moto_server
from tests.fakes.aws_sts import black_hole
from tests.sources.test_contract import SourceContract, profile_toml
from tokend.core import config
from tokend.core.broker import Broker, build_source
from tokend.core.credential import Credential
from tokend.core.errors import SourceError, SourceTimeout
from tokend.sources.base import BaseSource, FetchRequest


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


class AwsWorld:
    def __init__(self, root: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moto = moto
        self.monkeypatch = monkeypatch
        for name in LEAKY:
            monkeypatch.delenv(name, raising=False)
        for key, value in aws_files(
            root, "[profile base]\nregion = us-east-1\n[profile empty]\nregion = us-east-1\n"
        ).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("HOME", str(root))
        # The test's own client (setting secrets up), signed with moto's throwaway keys.
        kw: dict[str, Any] = {
            "endpoint_url": moto.url,
            "region_name": "us-east-1",
            "aws_access_key_id": "moto",
            "aws_secret_access_key": "moto",
        }
        self.sm = boto3.client("secretsmanager", **kw)
        self.ssm = boto3.client("ssm", **kw)

    def secret(self, name: str, value: str | bytes) -> dict[str, Any]:
        with contextlib.suppress(self.sm.exceptions.ResourceNotFoundException):
            self.sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        if isinstance(value, bytes):
            return self.sm.create_secret(Name=name, SecretBinary=value)  # type: ignore[no-any-return]
        return self.sm.create_secret(Name=name, SecretString=value)  # type: ignore[no-any-return]

    def source(self, source: str, clock: Any = time.time, **options: Any) -> BaseSource:
        options.setdefault("aws_profile", "base")
        profile = config.parse(profile_toml(source, options), None).profile("contract")
        return build_source(profile, clock)

    def targets(self) -> list[tuple[str, dict[str, Any]]]:
        """(X-Amz-Target, JSON body) of every recorded request, and who signed it."""
        out = []
        for entry in self.moto.recording():
            headers = {str(k).lower(): str(v) for k, v in dict(entry.get("headers") or {}).items()}
            target = headers.get("x-amz-target", "")
            if not target:
                continue
            raw = str(entry.get("body") or "")
            if entry.get("body_encoded"):
                raw = base64.b64decode(raw).decode("utf-8", "replace")
            try:
                body = json.loads(raw or "{}")
            except ValueError:
                body = {}
            body["_signer"] = headers.get("authorization", "").split("Credential=")[-1].split("/")[0]
            out.append((target, body))
        return out


@pytest.fixture
def world(tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> AwsWorld:
    moto.reset_recording()
    return AwsWorld(tmp_path, moto, monkeypatch)


def fetch(src: BaseSource, timeout: float = 10.0) -> Credential:
    return src.fetch(FetchRequest(profile="contract", timeout=timeout))


class TestSecretsManagerContract(SourceContract):
    source_name = "aws-secretsmanager"

    @pytest.fixture
    def options(self, world: AwsWorld) -> dict[str, Any]:
        world.secret("contract", "sk-contract-secretsmanager")
        return {"aws_profile": "base", "secret_id": "contract"}

    @pytest.fixture
    def unavailable_options(self, world: AwsWorld) -> dict[str, Any]:
        return {"aws_profile": "empty", "secret_id": "contract"}  # no credentials anywhere


class TestSsmContract(SourceContract):
    source_name = "aws-ssm"

    @pytest.fixture
    def options(self, world: AwsWorld) -> dict[str, Any]:
        world.ssm.put_parameter(
            Name="/contract", Value="sk-contract-ssm", Type="SecureString", Overwrite=True
        )
        return {"aws_profile": "base", "name": "/contract"}

    @pytest.fixture
    def unavailable_options(self, world: AwsWorld) -> dict[str, Any]:
        return {"aws_profile": "empty", "name": "/contract"}


# -- Secrets Manager ------------------------------------------------------------------------------


def test_secret_string_with_json_key_signed_by_the_profile(world: AwsWorld) -> None:
    world.secret("prod/openai", json.dumps({"api_key": "sk-from-sm-1", "org": "o-1"}))
    cred = fetch(world.source("aws-secretsmanager", secret_id="prod/openai", json_key="api_key", ttl="15m"))
    assert (cred.kind, cred.primary, cred.expires_at) == ("secret", "sk-from-sm-1", None)
    assert cred.refresh_at is not None and abs(cred.refresh_at - (time.time() + 900)) < 5
    ((target, body),) = [t for t in world.targets() if "GetSecretValue" in t[0]]
    assert target == "secretsmanager.GetSecretValue"
    assert body == {"SecretId": "prod/openai", "_signer": BASE_KEY_ID}


def test_version_stage_and_version_id(world: AwsWorld) -> None:
    first = world.secret("rotating", "value-one")
    world.sm.put_secret_value(SecretId="rotating", SecretString="value-two")
    assert fetch(world.source("aws-secretsmanager", secret_id="rotating")).primary == "value-two"
    previous = world.source("aws-secretsmanager", secret_id="rotating", version_stage="AWSPREVIOUS")
    assert fetch(previous).primary == "value-one"
    pinned = world.source("aws-secretsmanager", secret_id="rotating", version_id=first["VersionId"])
    assert fetch(pinned).primary == "value-one"
    bodies = [b for t, b in world.targets() if "GetSecretValue" in t]
    assert bodies[1]["VersionStage"] == "AWSPREVIOUS" and bodies[2]["VersionId"] == first["VersionId"]


def test_binary_secret_and_region_from_the_arn(world: AwsWorld) -> None:
    arn = world.secret("binary", b"binary-but-utf8")["ARN"]
    assert (
        fetch(world.source("aws-secretsmanager", secret_id=arn, aws_profile="base")).primary
        == "binary-but-utf8"
    )
    world.secret("binary-raw", b"\xff\xfe\x00")
    with pytest.raises(SourceError, match="is binary, not UTF-8 text"):
        fetch(world.source("aws-secretsmanager", secret_id="binary-raw"))


def test_missing_secret_names_it(world: AwsWorld) -> None:
    with pytest.raises(SourceError) as info:
        fetch(world.source("aws-secretsmanager", secret_id="prod/nothing-here"))
    assert info.value.line() == "tokend: contract: secret 'prod/nothing-here' not found"
    assert not info.value.retryable and info.value.exit_status == 1


def test_json_key_errors_name_fields_never_values(world: AwsWorld) -> None:
    world.secret("json", json.dumps({"user": "u", "password": "pw-never-shown"}))
    with pytest.raises(SourceError) as info:
        fetch(world.source("aws-secretsmanager", secret_id="json", json_key="api_key"))
    assert "no field 'api_key' (fields: password, user)" in info.value.message
    world.secret("plain", "pw-plain-never-shown")
    with pytest.raises(SourceError) as info:
        fetch(world.source("aws-secretsmanager", secret_id="plain", json_key="api_key"))
    assert "is not JSON" in info.value.message and "never-shown" not in info.value.message


# -- Parameter Store --------------------------------------------------------------------------------


def test_ssm_secure_string_is_decrypted(world: AwsWorld) -> None:
    world.ssm.put_parameter(
        Name="/app/key", Value='{"k": "ssm-secret-1"}', Type="SecureString", Overwrite=True
    )
    cred = fetch(world.source("aws-ssm", name="/app/key", json_key="k"))
    assert cred.primary == "ssm-secret-1"
    ((target, body),) = [t for t in world.targets() if "GetParameter" in t[0]]
    assert target == "AmazonSSM.GetParameter"
    assert body == {"Name": "/app/key", "WithDecryption": True, "_signer": BASE_KEY_ID}
    with pytest.raises(SourceError) as info:
        fetch(world.source("aws-ssm", name="/app/missing"))
    assert info.value.line() == "tokend: contract: parameter '/app/missing' not found"


# -- what moto does not play ---------------------------------------------------------------------------


@contextlib.contextmanager
def aws_json_endpoint(status: int, kind: str, message: str) -> Iterator[str]:
    """An AWS JSON-protocol endpoint answering every call with one error."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"__type": kind, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-RequestId", "3b1c0d3e-0000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_access_denied_names_the_secret(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    why = (
        "User: arn:aws:iam::123456789012:user/base is not authorized to perform: "
        "secretsmanager:GetSecretValue on resource: prod/openai"
    )
    with aws_json_endpoint(400, "AccessDeniedException", why) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        with pytest.raises(SourceError) as info:
            fetch(world.source("aws-secretsmanager", secret_id="prod/openai"))
    assert info.value.message.startswith("access denied reading secret 'prod/openai': User: arn:aws:iam::")
    assert not info.value.retryable


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["5xx", "hang"])
def test_cached_secret_served_while_aws_fails(
    world: AwsWorld, monkeypatch: pytest.MonkeyPatch, clock: FakeClock, fault: str
) -> None:
    world.secret("cached", "sk-cached-aws-1")
    text = '[profiles.s]\nsource = "aws-secretsmanager"\naws_profile = "base"\nsecret_id = "cached"\n'
    broker = Broker(config.parse(text + 'ttl = "10m"\ntimeout = "2s"\n', None), clock=clock)
    try:
        assert broker.get("s").primary == "sk-cached-aws-1"
        world.sm.put_secret_value(SecretId="cached", SecretString="sk-rotated-aws-2")
        with contextlib.ExitStack() as stack:
            if fault == "5xx":
                url = stack.enter_context(aws_json_endpoint(500, "InternalServiceError", "try again"))
            else:
                url = stack.enter_context(black_hole())
            monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
            clock.advance(601)
            assert broker.get("s").primary == "sk-cached-aws-1"  # stale: served, refresh in the background
            row = _settle(broker, "s")
            assert row["failures"] == 1 and row["state"] == "stale"
            assert broker.get("s").primary == "sk-cached-aws-1"
        monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        clock.advance(400)  # past the backoff: the rotated value arrives
        broker.get("s")
        row = _settle(broker, "s")
        assert broker.get("s").primary == "sk-rotated-aws-2"
        assert row["rotations"] == 1
    finally:
        broker.close()


def test_timeout_is_a_timeout(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    with black_hole() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", url)
        start = time.monotonic()
        with pytest.raises(SourceTimeout):
            fetch(world.source("aws-ssm", name="/x"), timeout=1.0)
        assert time.monotonic() - start < 4


def _settle(broker: Broker, name: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        (row,) = [r for r in broker.status() if r["profile"] == name]
        if not row.get("refreshing"):
            return row
        assert time.monotonic() < deadline
        time.sleep(0.02)
