"""The user's own credentials at their default places in HOME lose to the endpoints.

HOME holds a ``[default]`` profile with keys in ``~/.aws/credentials`` and
``~/.aws/config`` and gcloud's ADC file in
``~/.config/gcloud/application_default_credentials.json`` (what
``gcloud auth application-default login`` writes); no variable points
anywhere else. Under ``tokend exec --endpoint aws=… --endpoint google=…``,
boto3 and google-auth in one script must take tokend's credentials: the
role's keys from the container endpoint and the service account's token from
the metadata endpoint. Run bare, the same script takes the user's (the files
are real and would win).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests.fakes.aws_moto import ACCOUNT, BASE_KEY_ID, BASE_SECRET, LEAKY, MotoServer
from tests.fakes.google import FakeGoogle, fake_google

from .conftest import Sandbox
from .test_endpoints_aws import DEFAULT_KEY, ROLE
from .test_endpoints_security import setup_google_azure

SCRIPT = textwrap.dedent(
    """\
    import json, boto3, google.auth, google.auth.transport.requests
    session = boto3.Session()
    aws = session.get_credentials()
    ident = session.client("sts").get_caller_identity()
    creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    if not hasattr(creds, "refresh_token"):  # a user's ADC would go to Google itself: not refreshed here
        creds.refresh(google.auth.transport.requests.Request())
    print(json.dumps({"aws_method": aws.method, "aws_key": aws.access_key, "account": ident["Account"],
                      "google_type": type(creds).__module__ + "." + type(creds).__name__,
                      "google_token": creds.token}))
    """
)


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.mark.timeout(120)
def test_default_aws_keys_and_gcloud_adc_in_home_lose(
    sandbox: Sandbox, moto: MotoServer, google: FakeGoogle
) -> None:
    env = setup_google_azure(sandbox, google)
    sandbox.write_config(
        sandbox.config_path.read_text()
        + f'[profiles.role]\nsource = "aws"\naws_profile = "base"\nrole_arn = "{ROLE}"\n'
    )
    env = {
        k: v
        for k, v in env.items()
        if k not in LEAKY and k not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    }
    aws = sandbox.home / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "credentials").write_text(
        f"[base]\naws_access_key_id = {BASE_KEY_ID}\naws_secret_access_key = {BASE_SECRET}\n"
        f"[default]\naws_access_key_id = {DEFAULT_KEY}\naws_secret_access_key = default-secret-xyz\n"
    )
    (aws / "config").write_text("[default]\nregion = eu-west-3\n[profile base]\nregion = eu-west-3\n")
    gcloud = sandbox.home / ".config" / "gcloud"
    gcloud.mkdir(mode=0o700, parents=True)
    (gcloud / "application_default_credentials.json").write_text(json.dumps(google.authorized_user()))
    env.update(AWS_ENDPOINT_URL_STS=moto.url, AWS_EC2_METADATA_DISABLED="true", NO_GCE_CHECK="True")
    script = sandbox.root / "both.py"
    script.write_text(SCRIPT)

    # Bare, the user's files win: the test's setup is what it claims.
    bare = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert bare.returncode == 0, bare.stderr[-2000:]
    mine = json.loads(bare.stdout)
    assert mine["aws_key"] == DEFAULT_KEY and mine["google_type"] == "google.oauth2.credentials.Credentials"

    moto.reset_recording()
    r = sandbox.tokend(
        "exec",
        "--endpoint",
        "aws=role",
        "--endpoint",
        "google=vertex",
        "--",
        sys.executable,
        str(script),
        env=env,
        timeout=90,
    )
    assert r.status == 0, r
    doc = json.loads(r.out.splitlines()[-1])
    assert doc["aws_method"] == "container-role" and doc["account"] == ACCOUNT
    assert doc["aws_key"] not in (BASE_KEY_ID, DEFAULT_KEY)
    assumed = [c for c in moto.calls() if c.get("Action") == "AssumeRole"]
    assert len(assumed) == 1 and assumed[0]["_signer"] == BASE_KEY_ID  # tokend's fetch, with [base]
    assert doc["google_type"] == "google.auth.compute_engine.credentials.Credentials"
    issued = google.find(doc["google_token"])
    assert issued is not None and issued.principal == "vertex@proj.iam.gserviceaccount.com"
