"""``source = "aws"`` with real botocore against a local moto server (and fakes moto lacks).

Nothing of botocore is patched: profiles are routed with AWS_CONFIG_FILE,
AWS_SHARED_CREDENTIALS_FILE and AWS_ENDPOINT_URL_*; instance metadata is
disabled or pointed at a server that never answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from freezegun import freeze_time

from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, BASE_SECRET, LEAKY, MotoServer, aws_files, moto_server
from tests.fakes.aws_sso import fake_sso, legacy_sso_config, sso_config
from tests.fakes.aws_sts import black_hole, denying_sts
from tests.sources.test_contract import MemoryKeyring, SourceContract, memory_keyring, profile_toml
from tokend.core import config
from tokend.core.broker import build_source
from tokend.core.credential import Credential
from tokend.core.errors import (
    ConfigError,
    LoginRequired,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
    UsageError,
)
from tokend.sources.aws import AwsSource
from tokend.sources.aws import session as aws_session
from tokend.sources.aws import sso as aws_sso
from tokend.sources.aws import tokens as aws_tokens
from tokend.sources.base import FetchRequest, LoginContext

__all__ = ["memory_keyring"]  # a fixture, used by name

ROLE = f"arn:aws:iam::{ACCOUNT}:role/tokend-test"
CHAINED_ROLE = f"arn:aws:iam::{ACCOUNT}:role/chained"
MFA = f"arn:aws:iam::{ACCOUNT}:mfa/tester"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


class AwsWorld:
    """AWS config files and environment for one test; builds sources as the daemon does."""

    def __init__(self, root: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.moto = moto
        self.monkeypatch = monkeypatch
        self.pidfile = root / "hang.pid"
        (root / "webid.jwt").write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.")
        proc = root / "proc.py"
        proc.write_text(
            "import json\n"
            "print(json.dumps({'Version': 1, 'AccessKeyId': 'ASIAPROCESS000000001', "
            "'SecretAccessKey': 'process-secret-value', 'SessionToken': 'process-session-token', "
            "'Expiration': '2099-01-02T03:04:05Z'}))\n"
        )
        hang = root / "hang.py"
        hang.write_text(
            f"import os, time\nopen({str(self.pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
        )
        self.config_text = f"""\
[profile base]
region = us-east-1

[profile chained]
role_arn = {CHAINED_ROLE}
source_profile = base
role_session_name = chained-session
region = eu-west-1

[profile webid]
role_arn = arn:aws:iam::{ACCOUNT}:role/webid
web_identity_token_file = {root / "webid.jwt"}
region = us-east-1

[profile proc]
credential_process = {sys.executable} {proc}

[profile hang]
credential_process = {sys.executable} {hang}

[profile empty]
region = us-east-1

[profile prompting]
role_arn = {CHAINED_ROLE}
source_profile = base
mfa_serial = {MFA}

[profile looping]
credential_process = /opt/tokend/bin/tokend-print contract --format aws-process
"""
        self.write_config(self.config_text)
        for name in LEAKY:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("HOME", str(root / "home"))

    def write_config(self, text: str) -> None:
        for key, value in aws_files(self.root, text).items():
            self.monkeypatch.setenv(key, value)

    def source(self, **options: Any) -> AwsSource:
        profile = config.parse(profile_toml("aws", options), None).profile("contract")
        src = build_source(profile, time.time)
        assert isinstance(src, AwsSource)
        return src

    def fetch(self, timeout: float = 10.0, **options: Any) -> Credential:
        return self.source(**options).fetch(FetchRequest(profile="contract", timeout=timeout))


@pytest.fixture
def world(tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> AwsWorld:
    moto.reset_recording()
    return AwsWorld(tmp_path, moto, monkeypatch)


class TestAwsContract(SourceContract):
    source_name = "aws"

    @pytest.fixture
    def options(self, world: AwsWorld) -> dict[str, Any]:
        return {"aws_profile": "chained"}

    @pytest.fixture
    def unavailable_options(self, world: AwsWorld) -> dict[str, Any]:
        return {"aws_profile": "empty"}


# -- credentials exactly as botocore resolves them -------------------------------------------


def test_static_keys_are_re_read_like_a_static_secret(world: AwsWorld) -> None:
    now = time.time()
    cred = world.fetch(aws_profile="base")
    assert cred.kind == "aws"
    assert dict(cred.fields) == {"AccessKeyId": BASE_KEY_ID, "SecretAccessKey": BASE_SECRET}
    assert cred.expires_at is None
    assert cred.refresh_at is not None and cred.refresh_at >= now + 3000


def test_role_chain_in_the_aws_config(world: AwsWorld) -> None:
    now = time.time()
    cred = world.fetch(aws_profile="chained")
    assert cred.fields["AccessKeyId"].startswith("ASIA")
    assert cred.fields["SessionToken"]
    assert cred.expires_at is not None and now + 3500 < cred.expires_at < now + 3700
    (call,) = [c for c in world.moto.calls() if c.get("Action") == "AssumeRole"]
    assert call["RoleArn"] == CHAINED_ROLE
    assert call["RoleSessionName"] == "chained-session"
    assert call["_signer"] == BASE_KEY_ID


def test_role_assumed_by_tokend(world: AwsWorld) -> None:
    now = time.time()
    cred = world.fetch(
        aws_profile="base", role_arn=ROLE, external_id="ext-42", session_name="s1", duration="20m"
    )
    assert cred.expires_at is not None and abs(cred.expires_at - (now + 1200)) < 30
    (call,) = [c for c in world.moto.calls() if c.get("Action") == "AssumeRole"]
    assert (call["RoleArn"], call["ExternalId"], call["RoleSessionName"]) == (ROLE, "ext-42", "s1")
    assert call["DurationSeconds"] == "1200"
    assert call["_signer"] == BASE_KEY_ID


def test_role_assumed_on_top_of_a_botocore_role(world: AwsWorld) -> None:
    cred = world.fetch(aws_profile="chained", role_arn=ROLE)
    calls = [c for c in world.moto.calls() if c.get("Action") == "AssumeRole"]
    assert [c["RoleArn"] for c in calls] == [CHAINED_ROLE, ROLE]
    assert calls[0]["_signer"] == BASE_KEY_ID
    assert calls[1]["_signer"] not in (BASE_KEY_ID, "")  # signed by the chained role's keys
    assert calls[1]["RoleSessionName"] == "tokend-contract"
    assert cred.fields["AccessKeyId"] != calls[1]["_signer"]


def test_web_identity_profile(world: AwsWorld) -> None:
    cred = world.fetch(aws_profile="webid")
    assert cred.fields["SessionToken"] and cred.expires_at is not None
    assert [c.get("Action") for c in world.moto.calls()] == ["AssumeRoleWithWebIdentity"]


def test_credential_process_profile(world: AwsWorld) -> None:
    cred = world.fetch(aws_profile="proc")
    assert cred.fields["AccessKeyId"] == "ASIAPROCESS000000001"
    assert cred.expires_iso() == "2099-01-02T03:04:05Z"


def test_credential_process_is_bounded_and_killed(world: AwsWorld) -> None:
    start = time.monotonic()
    with pytest.raises(SourceTimeout, match=r"did not finish within 1\.5s"):
        world.fetch(timeout=1.5, aws_profile="hang")
    assert time.monotonic() - start < 4
    pid = int(world.pidfile.read_text())
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    )


def test_close_kills_a_running_credential_process(world: AwsWorld) -> None:
    import threading

    source = world.source(aws_profile="hang")
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            source.fetch(FetchRequest(profile="contract", timeout=30.0))
        except Exception as e:
            errors.append(e)

    thread = threading.Thread(target=fetch)
    thread.start()
    deadline = time.monotonic() + 10
    while not world.pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    start = time.monotonic()
    source.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - start < 5
    assert len(errors) == 1 and isinstance(errors[0], SourceError)


def test_credential_process_running_this_profile_is_refused(world: AwsWorld) -> None:
    with pytest.raises(ConfigError, match="would loop"):
        world.fetch(aws_profile="looping")


def test_mfa_in_the_aws_profile_is_refused_not_prompted(world: AwsWorld) -> None:
    with pytest.raises(ConfigError, match="mfa_serial"):
        world.fetch(aws_profile="prompting")
    assert world.moto.calls() == []


def test_unknown_aws_profile(world: AwsWorld) -> None:
    with pytest.raises(SourceError, match="nope") as info:
        world.fetch(aws_profile="nope")
    assert info.value.retryable is False


# -- failures ------------------------------------------------------------------------------------------


def test_no_credentials_is_unavailable_at_once(world: AwsWorld) -> None:
    start = time.monotonic()
    with pytest.raises(SourceUnavailable, match="no AWS credentials"):
        world.fetch(aws_profile="empty")
    assert time.monotonic() - start < 3.0


def test_unreachable_instance_metadata_is_bounded(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore reads metadata_service_timeout / _num_attempts from the profile: tokend caps them.
    world.write_config(
        world.config_text + "metadata_service_timeout = 10\nmetadata_service_num_attempts = 5\n"
    )
    with black_hole() as url:
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
        start = time.monotonic()
        with pytest.raises(SourceUnavailable):
            world.fetch(aws_profile="empty")
        elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"instance metadata probe took {elapsed:.1f}s"


def test_access_denied_names_the_role(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    with denying_sts() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
        with pytest.raises(SourceError, match=f"access denied assuming role {ROLE}") as info:
            world.fetch(aws_profile="base", role_arn=ROLE)
        assert info.value.retryable is False
        with pytest.raises(SourceError, match=f"access denied assuming role {CHAINED_ROLE}"):
            world.fetch(aws_profile="chained")


def test_unreachable_sts_is_a_retryable_error(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    with black_hole() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
        start = time.monotonic()
        with pytest.raises(SourceError) as info:
            world.fetch(timeout=2.0, aws_profile="base", role_arn=ROLE)
        assert info.value.retryable is True
        assert time.monotonic() - start < 4.0
        # botocore's own clients (here its AssumeRole for a role chain) get the same bounds.
        start = time.monotonic()
        with pytest.raises(SourceError):
            world.fetch(timeout=2.0, aws_profile="chained")
        assert time.monotonic() - start < 4.0


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"token": "eks"}, "cluster"),
        ({"token": "bedrock", "lifetime": "13h"}, "lifetime"),
        ({"role_arn": ROLE, "duration": "13h"}, "duration"),
    ],
)
def test_bad_combinations_are_config_errors(world: AwsWorld, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        world.fetch(aws_profile="base", **options)


def test_signing_needs_a_region(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    world.write_config("[profile base]\n")
    with pytest.raises(ConfigError, match="needs a region"):
        world.fetch(aws_profile="base", token="bedrock")


# -- expiry without botocore internals -------------------------------------------------------------------


def test_expiry_of_refreshable_credentials() -> None:
    from botocore.credentials import Credentials, RefreshableCredentials

    expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=42)
    creds = RefreshableCredentials("AKID", "SECRET", "TOKEN", expiry, lambda: {}, "test")
    assert aws_session.expiry_of(creds) == pytest.approx(expiry.timestamp())
    assert aws_session.bisect_expiry(creds.refresh_needed) == pytest.approx(expiry.timestamp(), abs=2)
    assert aws_session.expiry_of(Credentials("AKID", "SECRET")) is None


# -- Bedrock API keys ------------------------------------------------------------------------------


def _sigv4_query_signature(url: str, method: str, secret: str, headers: dict[str, str]) -> str:
    """Recompute a presigned URL's SigV4 signature from the spec (independent of botocore)."""
    parts = urlsplit(url)
    params = parse_qs(parts.query, keep_blank_values=True)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v[0], safe='-_.~')}"
        for k, v in sorted(params.items())
        if k != "X-Amz-Signature"
    )
    signed = params["X-Amz-SignedHeaders"][0].split(";")
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    payload = hashlib.sha256(b"").hexdigest()
    canonical = "\n".join([method, parts.path or "/", query, canonical_headers, ";".join(signed), payload])
    stamp = params["X-Amz-Date"][0]
    _, day, region, service, terminator = params["X-Amz-Credential"][0].split("/")
    scope = f"{day}/{region}/{service}/{terminator}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _bedrock_url(token: str) -> str:
    assert token.startswith("bedrock-api-key-")
    decoded = base64.b64decode(token.removeprefix("bedrock-api-key-"), validate=True).decode()
    assert decoded.endswith("&Version=1")
    return "https://" + decoded.removesuffix("&Version=1")


def test_bedrock_key_is_the_documented_presigned_url(world: AwsWorld) -> None:
    creds = aws_session.AwsCreds("ASIABEDROCKTEST00001", "bedrock-test-secret", "bedrock-session-token", None)
    with freeze_time("2026-03-04T05:06:07Z"):
        token, expires_at = aws_tokens.bedrock_key(creds, "us-west-2", 3600)
    url = _bedrock_url(token)
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "bedrock.amazonaws.com", "/")
    assert q["Action"] == "CallWithBearerToken"
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Credential"] == "ASIABEDROCKTEST00001/20260304/us-west-2/bedrock/aws4_request"
    assert q["X-Amz-Date"] == "20260304T050607Z"
    assert q["X-Amz-Expires"] == "3600"
    assert q["X-Amz-SignedHeaders"] == "host"
    assert q["X-Amz-Security-Token"] == "bedrock-session-token"
    assert q["X-Amz-Signature"] == _sigv4_query_signature(
        url, "POST", "bedrock-test-secret", {"host": "bedrock.amazonaws.com"}
    )
    assert expires_at == dt.datetime(2026, 3, 4, 6, 6, 7, tzinfo=dt.timezone.utc).timestamp()


def test_bedrock_key_equals_the_reference_generator() -> None:
    from aws_bedrock_token_generator import BedrockTokenGenerator, provide_token
    from botocore.credentials import Credentials

    creds = aws_session.AwsCreds("ASIABEDROCKTEST00002", "reference-secret", "reference-token", None)

    class Provider:
        def load(self) -> Credentials:
            return Credentials(creds.access_key, creds.secret_key, creds.token)

    with freeze_time("2026-05-06T07:08:09Z"):
        mine_12h, _ = aws_tokens.bedrock_key(creds, "eu-central-1", 12 * 3600)
        ref_12h = BedrockTokenGenerator().get_token(Provider().load(), "eu-central-1")
        mine_1h, _ = aws_tokens.bedrock_key(creds, "us-east-1", 3600)
        ref_1h = provide_token(
            region="us-east-1", aws_credentials_provider=Provider(), expiry=dt.timedelta(hours=1)
        )
    assert mine_12h == ref_12h
    assert mine_1h == ref_1h


def test_bedrock_key_lives_no_longer_than_its_session(world: AwsWorld) -> None:
    now = time.time()
    cred = world.fetch(aws_profile="base", role_arn=ROLE, duration="15m", token="bedrock", region="us-west-2")
    assert cred.kind == "bearer"
    assert cred.expires_at is not None and abs(cred.expires_at - (now + 900)) < 30
    q = {k: v[0] for k, v in parse_qs(urlsplit(_bedrock_url(cred.fields["token"])).query).items()}
    assert q["X-Amz-Expires"] == str(12 * 3600)
    assert q["X-Amz-Credential"].split("/")[2:4] == ["us-west-2", "bedrock"]
    short = world.fetch(aws_profile="chained", token="bedrock", lifetime="30m")
    signed = aws_tokens.signed_at(_bedrock_url(short.fields["token"]))
    assert short.expires_at == signed + 1800


# -- EKS tokens --------------------------------------------------------------------------------------------


def _eks_url(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_eks_token_is_a_presigned_get_caller_identity(world: AwsWorld) -> None:
    cred = world.fetch(aws_profile="chained", token="eks", cluster="prod-cluster", region="eu-west-1")
    url = _eks_url(cred.fields["token"])
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == urlsplit(world.moto.url).netloc  # AWS_ENDPOINT_URL_STS
    assert (q["Action"], q["Version"]) == ("GetCallerIdentity", "2011-06-15")
    assert q["X-Amz-Expires"] == "60"
    assert q["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    key_id, _, region, service, _ = q["X-Amz-Credential"].split("/")
    assert (region, service) == ("eu-west-1", "sts")
    assert cred.expires_at == aws_tokens.signed_at(url) + 14 * 60
    assert key_id.startswith("ASIA")  # the chained role's keys, not the base user's


def test_eks_token_signature_covers_the_cluster_header(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.session

    for name in (*LEAKY, "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    creds = aws_session.AwsCreds("ASIAEKSTEST000000001", "eks-test-secret", "eks-session-token", None)
    with freeze_time("2026-07-08T09:10:11Z"):
        token, expires_at = aws_tokens.eks_token(botocore.session.Session(), creds, "blue", "us-west-2", 5.0)
    url = _eks_url(token)
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "sts.us-west-2.amazonaws.com" and parts.path == "/"
    assert q["X-Amz-Credential"] == "ASIAEKSTEST000000001/20260708/us-west-2/sts/aws4_request"
    assert q["X-Amz-Security-Token"] == "eks-session-token"
    assert q["X-Amz-Signature"] == _sigv4_query_signature(
        url, "GET", "eks-test-secret", {"host": parts.netloc, "x-k8s-aws-id": "blue"}
    )
    # A different cluster name would not verify: the header is signed.
    assert q["X-Amz-Signature"] != _sigv4_query_signature(
        url, "GET", "eks-test-secret", {"host": parts.netloc, "x-k8s-aws-id": "green"}
    )
    assert expires_at == dt.datetime(2026, 7, 8, 9, 24, 11, tzinfo=dt.timezone.utc).timestamp()


# -- MFA through tokend login only ------------------------------------------------------------------------


def test_mfa_code_only_through_login(world: AwsWorld, memory_keyring: MemoryKeyring) -> None:
    source = world.source(aws_profile="base", role_arn=ROLE, mfa_serial=MFA)
    request = FetchRequest(profile="contract", timeout=10.0)
    with pytest.raises(LoginRequired, match="tokend login contract"):
        source.fetch(request)
    assert world.moto.calls() == []

    with pytest.raises(UsageError, match="terminal"):
        source.login(LoginContext(profile="contract", echo=print))
    asked: list[str] = []
    source.login(LoginContext(profile="contract", echo=print, prompt=lambda m: asked.append(m) or "123456"))
    assert asked == [f"MFA code for {MFA}"]
    (mfa,) = world.moto.calls()
    assert (mfa["Action"], mfa["SerialNumber"], mfa["TokenCode"]) == ("GetSessionToken", MFA, "123456")
    assert mfa["_signer"] == BASE_KEY_ID
    (stored,) = memory_keyring.items.values()
    assert "123456" not in stored

    world.moto.reset_recording()
    cred = source.fetch(request)
    (assume,) = world.moto.calls()
    assert assume["Action"] == "AssumeRole" and assume["_signer"] not in (BASE_KEY_ID, "")
    assert cred.fields["AccessKeyId"] != assume["_signer"]

    source.logout()
    assert memory_keyring.items == {}
    with pytest.raises(LoginRequired):
        source.fetch(request)


# -- SSO: identity and the device flow --------------------------------------------------------------------


def test_profiles_sharing_an_sso_session_share_an_identity(world: AwsWorld) -> None:
    world.write_config(
        sso_config("corp", ("dev", "prod"))
        + f"\n[profile admin]\nrole_arn = {ROLE}\nsource_profile = prod\n\n"
        + legacy_sso_config("legacy")
        + "\n[profile plain]\nregion = us-east-1\n"
    )
    ids = {p: world.source(aws_profile=p).identity() for p in ("dev", "prod", "admin", "legacy", "plain")}
    assert ids["dev"] == ids["prod"] == ids["admin"] == "aws-sso:session:corp"
    assert ids["legacy"] == "aws-sso:https://tokend-test.awsapps.com/start"
    assert ids["plain"] == "aws:contract"
    assert world.source(aws_profile="plain", role_arn=ROLE, mfa_serial=MFA).identity().startswith("aws-mfa:")
    with pytest.raises(UsageError, match="no sign-in"):
        world.source(aws_profile="plain").login(LoginContext(profile="contract", echo=print))


@pytest.mark.parametrize("legacy", [False, True])
def test_device_login_writes_the_aws_cli_cache_entry(
    world: AwsWorld, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    world.write_config(legacy_sso_config("dev") if legacy else sso_config("corp", ("dev",)))
    with fake_sso() as sso:
        sso.pending_polls = 1
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSO_OIDC", sso.url)
        said: list[str] = []
        source = world.source(aws_profile="dev")
        source.login(LoginContext(profile="contract", echo=said.append, open_browser=False, timeout=30))
        assert sso.calls["StartDeviceAuthorization"] == 1 and sso.calls["CreateToken"] == 2
        assert "user_code=" in "".join(said)
        sso.pending_polls = 0
        source.login(LoginContext(profile="contract", echo=said.append, open_browser=False, timeout=30))
        assert sso.calls["RegisterClient"] == 1  # the cached registration is reused, as the AWS CLI does

    cache = Path(os.environ["HOME"]) / ".aws" / "sso" / "cache"
    name = "https://tokend-test.awsapps.com/start" if legacy else "corp"
    entry_path = cache / (hashlib.sha1(name.encode()).hexdigest() + ".json")
    entry = json.loads(entry_path.read_text())
    assert set(entry) == {
        "startUrl",
        "region",
        "accessToken",
        "expiresAt",
        "clientId",
        "clientSecret",
        "registrationExpiresAt",
        "refreshToken",
    }
    assert entry["accessToken"] in sso.valid_tokens
    assert entry["expiresAt"].endswith("Z") and entry["registrationExpiresAt"].endswith("Z")
    assert oct(entry_path.stat().st_mode & 0o777) == "0o600"
    # botocore reads it back the way its SSO provider does.
    from botocore.utils import JSONFileCache, SSOTokenLoader

    loaded = SSOTokenLoader(JSONFileCache(str(cache)))(
        entry["startUrl"], session_name=None if legacy else "corp"
    )
    assert loaded["accessToken"] == entry["accessToken"]
    source.logout()
    assert not entry_path.exists()


def test_device_login_gives_up_at_its_timeout(world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world.write_config(sso_config("corp", ("dev",)))
    with fake_sso() as sso:
        sso.pending_polls = 1000
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSO_OIDC", sso.url)
        start = time.monotonic()
        with pytest.raises(SourceTimeout, match="not completed"):
            world.source(aws_profile="dev").login(
                LoginContext(profile="contract", echo=lambda m: None, open_browser=False, timeout=1.5)
            )
    assert time.monotonic() - start < 5
    token_file = hashlib.sha1(b"corp").hexdigest() + ".json"
    assert not (Path(os.environ["HOME"]) / ".aws" / "sso" / "cache" / token_file).exists()


def test_sso_config_errors_are_clear() -> None:
    chain = [("dev", {"sso_session": "missing"})]
    with pytest.raises(SourceError, match="missing"):
        aws_sso.find({"sso_sessions": {}}, chain)
    assert aws_sso.find({}, [("plain", {"region": "x"})]) is None
