"""``tokend setup`` as a real process against temporary HOMEs seeded like real machines.

The seeds are what gcloud 5xx, the AWS CLI v2 and the Azure CLI write: gcloud's
ADC file, active configuration and credentials.db; ``~/.aws/config`` with
``[sso-session]`` sections and an AWS CLI token cache entry; ``~/.aws/credentials``;
``~/.azure/azureProfile.json`` (with the BOM the Azure CLI writes); a Codex
``config.toml`` and Claude Code's ``settings.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
import stat
import textwrap
import time
from pathlib import Path

from tests.fakes.aws_moto import LEAKY
from tokend.core import config

from .conftest import Sandbox

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

#: The developer's own settings that would point the detection elsewhere.
HOST_VARS = (
    *LEAKY,
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "CLOUDSDK_CONFIG",
    "CLOUDSDK_ACTIVE_CONFIG_NAME",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CONFIG_DIR",
    "CODEX_HOME",
    "CLAUDE_CONFIG_DIR",
)


def env(sandbox: Sandbox) -> dict[str, str]:
    base = {k: v for k, v in sandbox.env().items() if k not in HOST_VARS}
    # No az, codex or claude from the host: only the files decide.
    return {**base, "PATH": f"{Path(sandbox.root, 'bin')}:/usr/bin:/bin"}


def write(path: Path, text: str | bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.chmod(path, mode)


def seed_gcloud(home: Path) -> None:
    gcloud = home / ".config" / "gcloud"
    write(
        gcloud / "application_default_credentials.json",
        json.dumps(
            {
                "account": "",
                "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
                "quota_project_id": "acme-ml-dev",
                "refresh_token": "1//0g-fake-refresh-token",
                "type": "authorized_user",
                "universe_domain": "googleapis.com",
            }
        ),
    )
    write(gcloud / "active_config", "default")
    properties = "[core]\naccount = dev@acme.example\nproject = acme-ml-dev\n"
    write(gcloud / "configurations" / "config_default", properties)
    with sqlite3.connect(gcloud / "credentials.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS credentials (account_id TEXT PRIMARY KEY, value BLOB)")
        db.execute("INSERT INTO credentials VALUES ('dev@acme.example', '{}')")


AWS_CONFIG = """\
[default]
region = eu-west-1
output = json

[sso-session acme]
sso_start_url = https://acme.awsapps.com/start
sso_region = eu-west-1
sso_registration_scopes = sso:account:access

[profile dev]
sso_session = acme
sso_account_id = 111111111111
sso_role_name = Developer
region = eu-west-1

[profile prod]
sso_session = acme
sso_account_id = 222222222222
sso_role_name = ReadOnly

[profile sandbox]
sso_start_url = https://other.awsapps.com/start
sso_region = us-east-1
sso_account_id = 333333333333
sso_role_name = Admin

[profile deploy]
role_arn = arn:aws:iam::222222222222:role/deploy
source_profile = dev

[profile tokend-dev]
credential_process = /usr/bin/tokend-print dev --format aws-process

[profile s3]
s3 =
  max_concurrent_requests = 20
"""


def seed_aws(home: Path) -> None:
    write(home / ".aws" / "config", AWS_CONFIG)
    write(home / ".aws" / "credentials", "[ci]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = x\n")
    # The acme session is signed in (aws sso login): tokend login is not the next step for it.
    expires = dt.datetime.fromtimestamp(time.time() + 3600, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cache = home / ".aws" / "sso" / "cache" / (hashlib.sha1(b"acme").hexdigest() + ".json")
    token = {"startUrl": "https://acme.awsapps.com/start", "accessToken": "x", "expiresAt": expires}
    write(cache, json.dumps(token))


def seed_azure(home: Path) -> None:
    profile = {
        "installationId": "5b6d2c0e-0000-0000-0000-000000000000",
        "subscriptions": [
            {
                "id": "00000000-0000-0000-0000-0000000000s1",
                "name": "Research",
                "state": "Enabled",
                "user": {"name": "other@acme.example", "type": "user"},
                "isDefault": False,
                "tenantId": "tenant-other",
                "environmentName": "AzureCloud",
            },
            {
                "id": "00000000-0000-0000-0000-0000000000s2",
                "name": "Pay-As-You-Go",
                "state": "Enabled",
                "user": {"name": "dev@acme.example", "type": "user"},
                "isDefault": True,
                "tenantId": "tenant-acme",
                "environmentName": "AzureCloud",
            },
        ],
    }
    write(home / ".azure" / "azureProfile.json", b"\xef\xbb\xbf" + json.dumps(profile).encode())


CODEX = """\
# my Codex settings
model = "gpt-5-codex"   # keep this comment

[model_providers.ollama]
name = "Ollama"
base_url = "http://localhost:11434/v1"
"""


def seed_consumers(home: Path) -> None:
    write(home / ".codex" / "config.toml", CODEX)
    write(home / ".claude" / "settings.json", json.dumps({"model": "opus"}))


def seed_all(sandbox: Sandbox) -> None:
    seed_gcloud(sandbox.home)
    seed_aws(sandbox.home)
    seed_azure(sandbox.home)
    seed_consumers(sandbox.home)


def test_setup_yes_proposes_every_sign_in(sandbox: Sandbox) -> None:
    seed_all(sandbox)
    r = sandbox.tokend("setup", "--yes", env=env(sandbox))
    assert r.status == 0, r
    assert r.out == ""
    cfg = config.load(sandbox.config_path)
    got = {
        name: (p.source, {k: v for k, v in p.options.items() if v is not None})
        for name, p in cfg.profiles.items()
    }
    aws_defaults = {"token": "credentials", "lifetime": 43200.0, "duration": 3600.0, "mfa_duration": 43200.0}
    assert list(got) == ["google", "aws-dev", "aws-prod", "aws-sandbox", "aws-deploy", "aws-ci", "azure"]
    assert got["google"][1]["quota_project"] == "acme-ml-dev"
    pairs = (("aws-dev", "dev"), ("aws-prod", "prod"), ("aws-deploy", "deploy"), ("aws-ci", "ci"))
    for name, aws_profile in pairs:
        assert got[name] == ("aws", {"aws_profile": aws_profile, **aws_defaults}), name
    assert got["azure"][0] == "azure" and got["azure"][1]["credential"] == "cli"
    assert stat.S_IMODE(os.stat(sandbox.config_path).st_mode) == 0o600
    text = sandbox.config_path.read_text()
    az = "# tokend setup: az login as dev@acme.example (tenant tenant-acme, subscription Pay-As-You-Go)\n"
    assert az in text
    assert "IAM Identity Center (sso-session acme, https://acme.awsapps.com/start)" in text
    assert "tokend-dev" not in text  # tokend's own credential_process profile would loop
    # One sign-in per SSO session, and only where there is none yet (acme is signed in).
    assert re.findall(r"next: tokend login (\S+)", r.err) == ["aws-sandbox"]
    assert "offer: tokend integrate codex google" in r.err
    assert "offer: tokend integrate claude PROFILE" in r.err
    assert "offer: tokend integrate aws aws-dev" in r.err
    assert 'azure: the az CLI is not on PATH; credential = "cli" needs it' in r.err
    # The config works: tokend reads it (no upstream call needed for that).
    status = sandbox.tokend("get", "nosuch", "--no-daemon", env=env(sandbox))
    assert status.status == 2 and "profiles in" in status.err


def test_setup_keeps_an_existing_config_and_is_idempotent(sandbox: Sandbox) -> None:
    seed_gcloud(sandbox.home)
    seed_aws(sandbox.home)
    mine = textwrap.dedent(
        """\
        # my own tokend config
        [defaults]
        min_ttl = "10m"   # longer than the default

        [profiles.google]
        # hand-written: impersonate the CI robot
        source = "google"
        impersonate_service_account = "ci@acme.iam.gserviceaccount.com"

        [profiles.mydev]
        source = "aws"
        aws_profile = "dev"
        """
    )
    sandbox.write_config(mine)
    r = sandbox.tokend("setup", "--yes", env=env(sandbox))
    assert r.status == 0, r
    text = sandbox.config_path.read_text()
    assert text.startswith(mine)  # untouched, comments and all; new profiles come after
    assert "  keep  google" in r.err and "  keep  mydev" in r.err
    doc = tomllib.loads(text)
    assert list(doc["profiles"]) == ["google", "mydev", "aws-prod", "aws-sandbox", "aws-deploy", "aws-ci"]
    assert doc["profiles"]["google"] == {
        "source": "google",
        "impersonate_service_account": "ci@acme.iam.gserviceaccount.com",
    }
    again = sandbox.tokend("setup", "--yes", env=env(sandbox))
    assert again.status == 0, again
    assert sandbox.config_path.read_text() == text
    assert "wrote" not in again.err


def test_setup_dry_run_and_no_terminal(sandbox: Sandbox) -> None:
    seed_azure(sandbox.home)
    dry = sandbox.tokend("setup", "--dry-run", env=env(sandbox))
    assert dry.status == 0, dry
    assert tomllib.loads(dry.out)["profiles"]["azure"] == {"source": "azure", "credential": "cli"}
    assert not sandbox.config_path.exists()
    asked = sandbox.tokend("setup", env=env(sandbox))  # stdin is /dev/null: nobody to ask
    assert asked.status == 2
    assert asked.err_lines == [
        "tokend: no terminal to ask on: run tokend setup --yes (or --dry-run to look first)"
    ]


def test_integrate_codex_after_setup_keeps_comments_and_providers(sandbox: Sandbox) -> None:
    seed_gcloud(sandbox.home)
    seed_consumers(sandbox.home)
    e = env(sandbox)
    assert sandbox.tokend("setup", "--yes", env=e).status == 0
    r = sandbox.tokend("integrate", "codex", "google", env=e)
    assert r.status == 0, r
    text = (sandbox.home / ".codex" / "config.toml").read_text()
    assert text.startswith(CODEX)
    doc = tomllib.loads(text)
    assert doc["model_providers"]["ollama"]["base_url"] == "http://localhost:11434/v1"
    auth = doc["model_providers"]["google"]["auth"]
    assert os.path.isabs(auth["command"]) and auth["command"].endswith("/tokend-print")
    assert doc["model_providers"]["google"]["http_headers"] == {"x-goog-user-project": "acme-ml-dev"}
