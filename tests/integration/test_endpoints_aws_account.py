"""``AccountId`` in the container-credentials answer: known for SSO profiles and for roles.

The SDKs that read it (botocore, for account-based endpoints) get the account
the served keys belong to: an AWS SSO profile's ``sso_account_id``, the
account of a role tokend assumes (``role_arn`` in the tokend profile) or of a
role the AWS profile itself assumes (``role_arn`` + ``source_profile`` in the
AWS config).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tests.fakes.aws_moto import BASE_KEY_ID, BASE_SECRET, LEAKY, MotoServer, aws_files
from tests.fakes.aws_sso import ACCOUNT as SSO_ACCOUNT
from tests.fakes.aws_sso import FakeSso, fake_sso, sso_config

from .conftest import Sandbox

#: An account of its own, so the answer cannot come from moto's default account.
CHAIN_ACCOUNT = "210987654321"

TOML = """
[profiles.sso]
source = "aws"
aws_profile = "dev"

[profiles.chained]
source = "aws"
aws_profile = "chained"

[profiles.keys]
source = "aws"
aws_profile = "base"
"""

#: CMD: the endpoint's answer, and the account botocore's container provider takes from it.
FETCH = textwrap.dedent(
    """\
    import json, os, urllib.request
    req = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                 headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
    with urllib.request.urlopen(req, timeout=20) as r:
        doc = json.loads(r.read())
    import botocore.session  # the SDK's own reading of the answer
    frozen = botocore.session.Session().get_credentials().get_frozen_credentials()
    doc["botocore_account_id"] = frozen.account_id
    print(json.dumps(doc))
    """
)


@pytest.fixture
def sso() -> Iterator[FakeSso]:
    with fake_sso() as fake:
        yield fake


def answer(sandbox: Sandbox, moto: MotoServer, sso: FakeSso, profile: str) -> dict[str, str | None]:
    sandbox.write_config(TOML)
    env = {k: v for k, v in sandbox.env().items() if k not in LEAKY}
    config = (
        sso_config("corp", ("dev",))
        + f"\n[profile chained]\nrole_arn = arn:aws:iam::{CHAIN_ACCOUNT}:role/chained\n"
        "source_profile = base\nregion = us-east-1\n"
        "\n[profile base]\nregion = us-east-1\n"
    )
    creds = f"[base]\naws_access_key_id = {BASE_KEY_ID}\naws_secret_access_key = {BASE_SECRET}\n"
    env.update(aws_files(sandbox.root, config, creds))
    env.update(
        AWS_ENDPOINT_URL_STS=moto.url,
        AWS_ENDPOINT_URL_SSO=sso.url,
        AWS_ENDPOINT_URL_SSO_OIDC=sso.url,
        AWS_EC2_METADATA_DISABLED="true",
    )
    sso.write_cache(sandbox.home, session_name="corp", access_token=sso.session_token(), expires_in=3600)
    script = sandbox.root / "fetch.py"
    script.write_text(FETCH)
    r = sandbox.tokend(
        "exec", "--endpoint", f"aws={profile}", "--", sys.executable, str(script), env=env, timeout=60
    )
    assert r.status == 0, r
    doc: dict[str, str | None] = json.loads(r.out)
    return doc


@pytest.mark.timeout(90)
def test_sso_profile_answers_its_sso_account_id(sandbox: Sandbox, moto: MotoServer, sso: FakeSso) -> None:
    doc = answer(sandbox, moto, sso, "sso")
    assert doc["AccessKeyId"] in sso.issued_keys
    assert doc["AccountId"] == doc["botocore_account_id"] == SSO_ACCOUNT


@pytest.mark.timeout(90)
def test_role_of_the_aws_profile_answers_its_account(
    sandbox: Sandbox, moto: MotoServer, sso: FakeSso
) -> None:
    doc = answer(sandbox, moto, sso, "chained")
    assert doc["AccessKeyId"].startswith("ASIA") and doc["AccessKeyId"] != BASE_KEY_ID
    assert doc["AccountId"] == doc["botocore_account_id"] == CHAIN_ACCOUNT


@pytest.mark.timeout(90)
def test_long_term_keys_answer_no_account(sandbox: Sandbox, moto: MotoServer, sso: FakeSso) -> None:
    doc = answer(sandbox, moto, sso, "keys")
    assert doc["AccessKeyId"] == BASE_KEY_ID
    assert "AccountId" not in doc and doc["botocore_account_id"] is None  # unknown: never guessed
