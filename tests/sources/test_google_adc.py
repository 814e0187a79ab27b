"""``source = "google"``: every ADC kind, impersonation and ID tokens, with real google-auth.

google-auth runs unmodified against ``tests.fakes.google.FakeGoogle``; the only
test seam is the source's ``session_factory`` (a requests session that routes
Google's fixed hosts to the fake).
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.google import FakeGoogle, fake_google, jwt_claims
from tests.sources.google_helpers import AUDIENCE, TARGET_SA, World, fetch, token
from tests.sources.test_contract import SourceContract
from tokend.core.errors import ConfigError, SourceError
from tokend.sources import registry
from tokend.sources.google import GoogleSource

# google-auth's generic loaders warn on every call (the source filters that in the daemon).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

POOL = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/prov"


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture
def world(tmp_path: Path, google: FakeGoogle) -> World:
    return World(tmp_path, google)


@pytest.fixture
def eastern(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local zone far from UTC: google-auth's naive-UTC expiries must not be read as local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def assert_fresh_hour(expires_at: float | None, life: float = 3600) -> None:
    assert expires_at is not None
    assert abs(expires_at - (time.time() + life)) < 60, expires_at - time.time()


def test_registered_as_a_builtin() -> None:
    assert registry.lookup("google") is GoogleSource


# -- each ADC kind ------------------------------------------------------------------


def test_authorized_user_from_gclouds_adc_file(world: World, google: FakeGoogle, eastern: None) -> None:
    world.adc(google.authorized_user("alice@example.com"))
    cred = fetch(world.source())
    issued = google.find(token(cred))
    assert issued is not None and issued.grant == "refresh_token" and issued.principal == "alice@example.com"
    assert cred.kind == "bearer" and cred.source == "google" and cred.extra["adc_kind"] == "authorized_user"
    assert_fresh_hour(cred.expires_at)  # naive UTC from google-auth, read as UTC


def test_service_account_via_google_application_credentials(world: World, google: FakeGoogle) -> None:
    path = world.write("sa.json", google.service_account("robot@proj.iam.gserviceaccount.com"))
    cred = fetch(world.source(env={"GOOGLE_APPLICATION_CREDENTIALS": path}))
    issued = google.find(token(cred))
    # The fake verified the JWT's signature with the key's public half.
    assert issued is not None and issued.grant == "jwt-bearer"
    assert issued.principal == "robot@proj.iam.gserviceaccount.com"
    assert issued.detail["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert_fresh_hour(cred.expires_at)


def test_credentials_file_beats_the_environment_and_scopes_apply(world: World, google: FakeGoogle) -> None:
    mine = world.write("mine.json", google.service_account("mine@proj.iam.gserviceaccount.com", key=1))
    other = world.write("other.json", google.service_account("other@proj.iam.gserviceaccount.com", key=2))
    scopes = ("https://www.googleapis.com/auth/devstorage.read_only",)
    cred = fetch(
        world.source(credentials_file=mine, scopes=scopes, env={"GOOGLE_APPLICATION_CREDENTIALS": other})
    )
    issued = google.find(token(cred))
    assert issued is not None and issued.principal == "mine@proj.iam.gserviceaccount.com"
    assert issued.detail["scopes"] == list(scopes)


def test_a_service_account_key_google_does_not_know_is_refused(world: World, google: FakeGoogle) -> None:
    info = google.service_account("robot@proj.iam.gserviceaccount.com", key=3)
    google.service_accounts["robot@proj.iam.gserviceaccount.com"] = google.signing_key.public_key()  # rotated
    path = world.write("sa.json", info)
    with pytest.raises(SourceError) as err:
        fetch(world.source(credentials_file=path))
    assert "Invalid JWT Signature" in str(err.value)
    assert err.value.retryable is False and err.value.exit_status == 1


def external(google: FakeGoogle, credential_source: dict[str, object], **extra: object) -> dict[str, object]:
    return {
        "type": "external_account",
        "audience": POOL,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": google.url + "/v1/token",
        "credential_source": credential_source,
        "universe_domain": "googleapis.com",
        **extra,
    }


def test_external_account_file_sourced(world: World, google: FakeGoogle) -> None:
    subject = world.root / "k8s-token"
    subject.write_text("subject-from-file")
    path = world.write("wif.json", external(google, {"file": str(subject)}))
    cred = fetch(world.source(credentials_file=path))
    issued = google.find(token(cred))
    assert issued is not None and issued.grant == "sts"
    assert issued.principal.endswith("/subject/subject-from-file")
    assert cred.extra["adc_kind"] == "external_account"
    assert_fresh_hour(cred.expires_at)


def test_external_account_url_sourced(world: World, google: FakeGoogle) -> None:
    source = {
        "url": google.url + "/subject-token",
        "format": {"type": "json", "subject_token_field_name": "id_token"},
    }
    cred = fetch(world.source(credentials_file=world.write("wif.json", external(google, source))))
    issued = google.find(token(cred))
    assert issued is not None and issued.principal.endswith("/subject/subject-from-url")


def test_external_account_executable_sourced(
    world: World, google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    script = world.root / "subject.py"
    script.write_text(
        textwrap.dedent(
            """\
            import json, time
            print(json.dumps({"version": 1, "success": True,
                              "token_type": "urn:ietf:params:oauth:token-type:jwt",
                              "id_token": "subject-from-executable",
                              "expiration_time": int(time.time()) + 3600}))
            """
        )
    )
    source = {"executable": {"command": f"{sys.executable} {script}", "timeout_millis": 5000}}
    cred = fetch(world.source(credentials_file=world.write("wif.json", external(google, source))))
    issued = google.find(token(cred))
    assert issued is not None and issued.principal.endswith("/subject/subject-from-executable")


def test_external_account_aws_sourced(
    world: World, google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS credentials and region from the environment, as on Lambda: no IMDS call.
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-access-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    source = {
        "environment_id": "aws1",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
    }
    info = external(google, source, subject_token_type="urn:ietf:params:aws:token-type:aws4_request")
    cred = fetch(world.source(credentials_file=world.write("aws.json", info)))
    issued = google.find(token(cred))
    # The fake read the SigV4-signed GetCallerIdentity request out of the subject token.
    assert issued is not None and issued.principal.endswith("/subject/AKIDFAKEEXAMPLE")


def test_external_account_with_service_account_impersonation(world: World, google: FakeGoogle) -> None:
    subject = world.root / "token"
    subject.write_text("subject-from-file")
    url = f"{google.url}/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken"
    info = external(google, {"file": str(subject)}, service_account_impersonation_url=url)
    cred = fetch(world.source(credentials_file=world.write("wif.json", info)))
    issued = google.find(token(cred))
    assert issued is not None and issued.grant == "impersonation" and issued.principal == TARGET_SA
    assert google.grants() == ["sts", "impersonation"]


def test_external_account_authorized_user(world: World, google: FakeGoogle) -> None:
    refresh = google.authorized_user("worker@example.com")["refresh_token"]
    info = {
        "type": "external_account_authorized_user",
        "audience": "//iam.googleapis.com/locations/global/workforcePools/pool/providers/prov",
        "refresh_token": refresh,
        "token_url": google.url + "/token",
        "client_id": "fake-client.apps.googleusercontent.com",
        "client_secret": "fake-secret",
        "universe_domain": "googleapis.com",
    }
    cred = fetch(world.source(credentials_file=world.write("workforce.json", info)))
    issued = google.find(token(cred))
    assert issued is not None and issued.principal == "worker@example.com"


def test_impersonated_service_account_file(world: World, google: FakeGoogle) -> None:
    world.adc(
        {
            "type": "impersonated_service_account",
            "service_account_impersonation_url": (
                f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken"
            ),
            "source_credentials": google.authorized_user("alice@example.com"),
            "delegates": [],
        }
    )
    cred = fetch(world.source())
    issued = google.find(token(cred))
    assert issued is not None and issued.grant == "impersonation" and issued.principal == TARGET_SA
    assert issued.detail["caller"] == "alice@example.com"


def test_compute_metadata_server(world: World, google: FakeGoogle) -> None:
    # No ADC file anywhere: google-auth's last resort (the fake's metadata
    # server answers only requests with Metadata-Flavor: Google).
    cred = fetch(world.source())
    issued = google.find(token(cred))
    assert issued is not None and issued.grant == "metadata" and issued.principal == google.metadata_account
    assert cred.extra["adc_kind"] == "compute"
    assert issued.detail["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert_fresh_hour(cred.expires_at)


# -- impersonation ------------------------------------------------------------------


def test_impersonation_on_top_of_user_credentials(world: World, google: FakeGoogle, eastern: None) -> None:
    world.adc(google.authorized_user("alice@example.com"))
    cred = fetch(
        world.source(
            impersonate_service_account=TARGET_SA,
            delegates=("mid@proj.iam.gserviceaccount.com",),
            lifetime=12 * 3600.0,
            quota_project="billing-proj",
        )
    )
    issued = google.find(token(cred))
    assert issued is not None and issued.grant == "impersonation" and issued.principal == TARGET_SA
    assert issued.detail["caller"] == "alice@example.com"
    assert issued.detail["delegates"] == ["projects/-/serviceAccounts/mid@proj.iam.gserviceaccount.com"]
    assert issued.detail["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert issued.detail["quota"] == "billing-proj"  # x-goog-user-project on the IAM call
    assert_fresh_hour(cred.expires_at, life=12 * 3600)  # expireTime: naive UTC, read as UTC


def test_impersonation_on_top_of_a_service_account(world: World, google: FakeGoogle) -> None:
    path = world.write("sa.json", google.service_account("base@proj.iam.gserviceaccount.com"))
    cred = fetch(world.source(credentials_file=path, impersonate_service_account=TARGET_SA))
    issued = google.find(token(cred))
    assert issued is not None and issued.detail["caller"] == "base@proj.iam.gserviceaccount.com"
    assert_fresh_hour(cred.expires_at)


def test_impersonation_denied_is_a_clear_error(world: World, google: FakeGoogle) -> None:
    google.impersonable = set()
    world.adc(google.authorized_user())
    with pytest.raises(SourceError) as err:
        fetch(world.source(impersonate_service_account=TARGET_SA))
    assert "PERMISSION_DENIED" in str(err.value) and err.value.retryable is False
    assert "ya29." not in str(err.value)


# -- ID tokens ----------------------------------------------------------------------


def test_id_token_from_a_service_account(world: World, google: FakeGoogle) -> None:
    google.expires_in = 1200  # the expiry comes from the JWT, not from a default
    path = world.write("sa.json", google.service_account("robot@proj.iam.gserviceaccount.com"))
    cred = fetch(world.source(credentials_file=path, token="id", audience=AUDIENCE))
    claims = jwt_claims(token(cred))
    assert claims["aud"] == AUDIENCE and claims["email"] == "robot@proj.iam.gserviceaccount.com"
    assert cred.expires_at == claims["exp"]
    assert_fresh_hour(cred.expires_at, life=1200)


def test_id_token_from_the_metadata_server(world: World, google: FakeGoogle) -> None:
    cred = fetch(world.source(token="id", audience=AUDIENCE))
    claims = jwt_claims(token(cred))
    assert claims["aud"] == AUDIENCE and claims["email"] == google.metadata_account
    assert cred.expires_at == claims["exp"]


def test_id_token_by_impersonation(world: World, google: FakeGoogle) -> None:
    world.adc(google.authorized_user("alice@example.com"))
    cred = fetch(world.source(token="id", audience=AUDIENCE, impersonate_service_account=TARGET_SA))
    claims = jwt_claims(token(cred))
    assert claims["aud"] == AUDIENCE and claims["email"] == TARGET_SA
    issued = google.find(token(cred))
    assert issued is not None and issued.detail["caller"] == "alice@example.com"


def test_id_token_from_an_impersonated_service_account_file(world: World, google: FakeGoogle) -> None:
    world.adc(
        {
            "type": "impersonated_service_account",
            "service_account_impersonation_url": (
                f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken"
            ),
            "source_credentials": google.authorized_user("alice@example.com"),
        }
    )
    cred = fetch(world.source(token="id", audience=AUDIENCE))
    assert jwt_claims(token(cred))["email"] == TARGET_SA


def test_user_credentials_alone_cannot_mint_id_tokens(world: World, google: FakeGoogle) -> None:
    world.adc(google.authorized_user())
    with pytest.raises(SourceError, match="set impersonate_service_account"):
        fetch(world.source(token="id", audience=AUDIENCE))


# -- options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"impersonate_service_account": TARGET_SA, "lifetime": 13 * 3600.0}, "lifetime: expected up to 12h"),
        ({"lifetime": 600.0}, "lifetime: only impersonated tokens"),
        ({"delegates": ("a@b",)}, "delegates: needs impersonate_service_account"),
        ({"token": "id"}, "audience: required"),
        ({"audience": AUDIENCE}, "audience: only ID tokens"),
    ],
)
def test_option_combinations_are_checked(world: World, options: dict[str, object], message: str) -> None:
    from tests.sources.test_contract import profile_toml
    from tokend.core import config

    with pytest.raises(ConfigError, match=message) as err:  # at load, naming the key path
        config.parse(profile_toml("google", options), None)
    assert err.value.exit_status == 2 and "profiles.contract." in err.value.message


def test_profile_options_parse_from_toml() -> None:
    from tokend.core import config

    cfg = config.parse(
        textwrap.dedent(
            """\
            [profiles.vertex]
            source = "google"

            [profiles.run]
            source = "google"
            token = "id"
            audience = "https://svc.run.app"
            impersonate_service_account = "sa@p.iam.gserviceaccount.com"
            delegates = ["mid@p.iam.gserviceaccount.com"]
            lifetime = "2h"
            quota_project = "billing"
            scopes = ["https://www.googleapis.com/auth/cloud-platform"]
            """
        ),
        None,
    )
    assert cfg.profile("vertex").options["scopes"] == ("https://www.googleapis.com/auth/cloud-platform",)
    assert cfg.profile("vertex").options["token"] == "access"
    assert cfg.profile("run").options["lifetime"] == 7200.0
    json.dumps(dict(cfg.profile("run").options))  # the profile fingerprint serializes it


class TestGoogleContract(SourceContract):
    """The shared source contract, built through the config and the registry as the daemon does."""

    source_name = "google"

    @pytest.fixture
    def options(self, google: FakeGoogle, tmp_path: Path) -> dict[str, Any]:
        # A service-account key honours its token_uri: no test transport needed.
        key = tmp_path / "contract-sa.json"
        key.write_text(json.dumps(google.service_account()))
        return {"credentials_file": str(key)}

    @pytest.fixture
    def unavailable_options(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
        monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        monkeypatch.setenv("NO_GCE_CHECK", "true")  # and no metadata server to ask
        return {}
