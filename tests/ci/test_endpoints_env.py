"""CMD's environment under ``tokend exec --endpoint``: what each cloud sets, removes and hides."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from tokend.ci import endpoints_env as envs
from tokend.core.config import Profile
from tokend.core.credential import Credential
from tokend.core.errors import UsageError


def profile(source: str, **options: Any) -> Profile:
    return Profile(
        name="p",
        source=source,
        min_ttl=300.0,
        timeout=30.0,
        refresh_limit=60.0,
        options=MappingProxyType(options),
    )


def test_parse_endpoint() -> None:
    assert envs.parse_endpoint("aws=prod") == envs.EndpointSpec("aws", "prod")
    for bad in ("aws", "gcp=x", "aws=", "=x"):
        with pytest.raises(UsageError):
            envs.parse_endpoint(bad)
    with pytest.raises(UsageError, match="given twice"):
        envs.check_specs([envs.parse_endpoint("aws=a"), envs.parse_endpoint("aws=b")])


@pytest.mark.parametrize(
    ("cloud", "prof"),
    [
        ("aws", profile("aws", token="bedrock")),
        ("aws", profile("google", token="access")),
        ("aws", profile("azure")),
        ("google", profile("aws", token="credentials")),
        ("google", profile("google", token="id")),
        ("google", profile("command")),
        ("azure", profile("google", token="access")),
        ("azure", profile("keyring")),
    ],
)
def test_wrong_kind_of_profile_is_a_usage_error(cloud: str, prof: Profile) -> None:
    with pytest.raises(UsageError) as err:
        envs.check_profile(envs.EndpointSpec(cloud, "p"), prof)
    assert err.value.exit_status == 2 and f"--endpoint {cloud}=p" in err.value.line()


def test_kind_checked_again_on_the_credential() -> None:
    envs.check_profile(envs.EndpointSpec("aws", "p"), profile("command"))  # may print AWS JSON: fetch first
    with pytest.raises(UsageError, match="bearer credentials"):
        envs.check_credential(envs.EndpointSpec("aws", "p"), Credential.bearer("t"))


def test_aws_env_removes_what_wins_and_hides_the_users_files(tmp_path: Path) -> None:
    user_config = tmp_path / "config"
    user_config.write_text(
        "[default]\nregion = eu-west-1\noutput = json\naws_access_key_id = AKIAUSER\ncredential_process = x\n"
        "[profile dev]\nregion = ap-south-1\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = default\n"
    )
    env = {var: "planted" for var in envs.AWS_REMOVED} | {"AWS_REGION": "kept", "PATH": "/bin"}
    private = tmp_path / "private"
    private.mkdir()
    envs.aws_env(
        env,
        "http://127.0.0.1:1/aws/credentials",
        "tok",
        str(private),
        profile("aws", aws_profile="dev"),
        {"AWS_CONFIG_FILE": str(user_config)},
    )
    assert not set(envs.AWS_REMOVED) & set(env)
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:1/aws/credentials"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == "tok"
    assert env["AWS_REGION"] == "kept" and env["PATH"] == "/bin"
    parser = configparser.RawConfigParser()
    parser.read(env["AWS_CONFIG_FILE"])
    assert parser.sections() == ["default"]
    assert dict(parser.items("default")) == {
        "region": "ap-south-1",
        "output": "json",
    }  # the tokend profile's AWS profile
    assert Path(env["AWS_SHARED_CREDENTIALS_FILE"]).read_text() == ""
    for name in ("aws-config", "aws-credentials"):
        assert os.stat(private / name).st_mode & 0o777 == 0o600


def test_aws_env_region_option_wins(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    envs.aws_env(
        env, "u", "t", str(tmp_path), profile("aws", region="us-west-2"), {"AWS_CONFIG_FILE": "/nonexistent"}
    )
    assert "region = us-west-2" in Path(env["AWS_CONFIG_FILE"]).read_text()


def test_google_env(tmp_path: Path) -> None:
    env = {"GOOGLE_APPLICATION_CREDENTIALS": "/sa.json", "NO_GCE_CHECK": "true", "CLOUDSDK_CONFIG": "/mine"}
    envs.google_env(env, "127.0.0.1:9", str(tmp_path), "proj")
    assert env["GCE_METADATA_HOST"] == env["GCE_METADATA_IP"] == env["GCE_METADATA_ROOT"] == "127.0.0.1:9"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env and "NO_GCE_CHECK" not in env
    assert env["CLOUDSDK_CONFIG"] == str(tmp_path / "gcloud") and os.listdir(env["CLOUDSDK_CONFIG"]) == []
    assert env["GOOGLE_CLOUD_PROJECT"] == "proj"
    unknown: dict[str, str] = {}
    (tmp_path / "x").mkdir()
    envs.google_env(unknown, "127.0.0.1:9", str(tmp_path / "x"), None)
    assert "GOOGLE_CLOUD_PROJECT" not in unknown


def test_azure_env() -> None:
    env = {var: "planted" for var in envs.AZURE_REMOVED}
    envs.azure_env(env, "http://127.0.0.1:2/msi/token", "hdr", profile("azure"))
    assert env == {"IDENTITY_ENDPOINT": "http://127.0.0.1:2/msi/token", "IDENTITY_HEADER": "hdr"}
    envs.azure_env(env, "u", "h", profile("azure", client_id="cid"))
    assert env["AZURE_CLIENT_ID"] == "cid"


def test_azure_profile_resource() -> None:
    from tokend.daemon.endpoints.azure import profile_resource

    assert profile_resource({}) == "https://cognitiveservices.azure.com"  # the source's default scope
    assert profile_resource({"resource": "https://vault.azure.net/"}) == "https://vault.azure.net"
    assert (
        profile_resource({"scopes": ("https://management.azure.com//.default",)})
        == "https://management.azure.com"
    )
    assert profile_resource({"scopes": ("api://x/read", "api://x/write")}) is None


def test_e_may_not_set_what_an_endpoint_owns() -> None:
    specs = [envs.parse_endpoint("aws=a"), envs.parse_endpoint("google=g")]
    envs.check_clashes(specs, ["TOKEN", "IDENTITY_HEADER"])  # azure is not served: fine
    for name in ("AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST"):
        with pytest.raises(UsageError, match=name):
            envs.check_clashes(specs, ["TOKEN", name])
