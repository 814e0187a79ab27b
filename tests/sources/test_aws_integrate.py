"""``tokend integrate aws`` / ``kubectl``: the consumer configs they write, and what they leave alone."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from tokend.core.errors import UsageError
from tokend.integrations import aws as aws_integration
from tokend.integrations import kubectl as kubectl_integration

HELPER = "/opt/tokend/bin/tokend-print"

TOML = """
[profiles.dev]
source = "aws"
aws_profile = "dev-sso"
region = "eu-west-1"

[profiles.sso]
source = "aws"
aws_profile = "sso"

[profiles.eks]
source = "aws"
token = "eks"
cluster = "prod"

[profiles.key]
source = "aws"
token = "bedrock"

[profiles.cmd]
source = "command"
command = ["true"]
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "tokend.toml"
    cfg.write_text(TOML)
    cfg.chmod(0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(cfg))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return tmp_path


AWS_CONFIG = textwrap.dedent(
    """\
    # company defaults
    [default]
    region = us-east-1   ; inline comment

    [profile sso]
    sso_session = corp
    sso_account_id = 123456789012
    sso_role_name = Dev
    [sso-session corp]
    sso_start_url = https://corp.awsapps.com/start
    sso_region = us-east-1
    """
)


def test_aws_adds_a_section_and_keeps_the_rest(home: Path) -> None:
    path = home / "aws" / "config"
    path.parent.mkdir()
    path.write_text(AWS_CONFIG)
    path.chmod(0o640)
    said = aws_integration.apply("dev", HELPER, dry_run=False)
    assert "AWS_PROFILE=dev" in said
    text = path.read_text()
    assert text.startswith(AWS_CONFIG)
    assert text[len(AWS_CONFIG) :] == (
        f"\n[profile dev]\ncredential_process = {HELPER} dev --format aws-process\nregion = eu-west-1\n"
    )
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    # Again: nothing changes.
    assert "already" in aws_integration.apply("dev", HELPER, dry_run=False)
    assert path.read_text() == text
    # A moved helper replaces the line in place.
    aws_integration.apply("dev", "/usr/bin/tokend-print", dry_run=False)
    assert path.read_text() == text.replace(HELPER, "/usr/bin/tokend-print")


def test_aws_never_overrides_a_profile_with_credentials_of_its_own(home: Path) -> None:
    path = home / "aws" / "config"
    path.parent.mkdir()
    path.write_text(AWS_CONFIG)
    said = aws_integration.apply("sso", HELPER, dry_run=False)
    assert "[profile tokend-sso]" in said
    text = path.read_text()
    assert text.startswith(AWS_CONFIG)
    assert f"[profile tokend-sso]\ncredential_process = {HELPER} sso --format aws-process\n" in text


def test_aws_dry_run_and_a_missing_file(home: Path) -> None:
    said = aws_integration.apply("dev", HELPER, dry_run=True)
    assert f"credential_process = {HELPER} dev --format aws-process" in said
    path = home / "aws" / "config"
    assert not path.exists()
    aws_integration.apply("dev", HELPER, dry_run=False)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert path.read_text().startswith("[profile dev]\n")


def test_aws_follows_a_symlinked_config(home: Path) -> None:
    real = home / "dotfiles" / "aws-config"
    real.parent.mkdir()
    real.write_text("[default]\nregion = us-east-1\n")
    (home / "aws").mkdir()
    (home / "aws" / "config").symlink_to(real)
    aws_integration.apply("dev", HELPER, dry_run=False)
    assert (home / "aws" / "config").is_symlink()
    assert "[profile dev]" in real.read_text()


@pytest.mark.parametrize("profile", ["key", "eks", "cmd"])
def test_aws_needs_a_credentials_profile(home: Path, profile: str) -> None:
    with pytest.raises(UsageError, match="credential_process needs AWS credentials"):
        aws_integration.apply(profile, HELPER, dry_run=False)


def test_kubectl_block(home: Path) -> None:
    said = kubectl_integration.apply("eks", HELPER, dry_run=True)
    block = yaml.safe_load("\n".join(line for line in said.splitlines() if not line.startswith("#")))
    assert block == {"users": [kubectl_integration.user_entry("eks", HELPER)]}
    (user,) = block["users"]
    assert user["name"] == "tokend-eks"
    assert user["user"]["exec"] == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": HELPER,
        "args": ["eks", "--format", "exec-credential"],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
    assert not (home / ".kube" / "config").exists()


def test_kubectl_writes_a_plain_kubeconfig_keeping_the_rest(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / "kube" / "config"
    path.parent.mkdir()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": "https://k8s.example:6443"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "tokend-eks"}}],
        "current-context": "prod",
        "users": [
            {"name": "other", "user": {"token": "abc"}},
            {"name": "tokend-eks", "user": {"exec": {"command": "old"}}},
        ],
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("KUBECONFIG", f"{path}{os.pathsep}{home / 'second'}")
    said = kubectl_integration.apply("eks", HELPER, dry_run=False)
    assert "tokend-eks" in said
    new = yaml.safe_load(path.read_text())
    assert list(new) == list(doc)
    assert {k: v for k, v in new.items() if k != "users"} == {k: v for k, v in doc.items() if k != "users"}
    assert new["users"] == [doc["users"][0], kubectl_integration.user_entry("eks", HELPER)]


def test_kubectl_leaves_a_commented_kubeconfig_alone(home: Path) -> None:
    path = home / ".kube" / "config"
    path.parent.mkdir()
    original = "# managed by hand\napiVersion: v1\nkind: Config\nusers: []\n"
    path.write_text(original)
    said = kubectl_integration.apply("eks", HELPER, dry_run=False)
    assert "left as it is" in said and "comments" in said
    assert "exec-credential" in said
    assert path.read_text() == original


def test_kubectl_needs_a_token_profile(home: Path) -> None:
    with pytest.raises(UsageError, match='token = "eks"'):
        kubectl_integration.apply("dev", HELPER, dry_run=True)


def test_kubectl_creates_a_missing_kubeconfig(home: Path) -> None:
    kubectl_integration.apply("eks", HELPER, dry_run=False)
    path = home / ".kube" / "config"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "Config" and doc["users"] == [kubectl_integration.user_entry("eks", HELPER)]
