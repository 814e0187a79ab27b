# ruff: noqa: F811 (pytest fixtures imported from tests.fakes.azure_env are parameters here)
"""OIDC federation: the CI job's ID token (GitHub endpoint, GitLab variable) and each cloud's exchange.

GitHub's ID-token endpoint is a local fake (tests/fakes/github_oidc.py); Google
STS is tests/fakes/google.py behind google-auth; Entra is tests/fakes/entra.py
behind azure-identity. AWS is covered with moto in tests/integration/test_oidc.py.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.azure_env import AzureEnv, azure_env, entra, test_ca  # noqa: F401
from tests.fakes.entra import FakeEntra
from tests.fakes.github_oidc import FakeGithubOidc, fake_github_oidc
from tests.fakes.google import FakeGoogle, fake_google
from tests.sources.google_helpers import World
from tokend.ci import oidc
from tokend.core.errors import REDACTOR, ConfigError, SourceError
from tokend.sources.base import FetchRequest
from tokend.sources.google import federation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROVIDER = "projects/123456/locations/global/workloadIdentityPools/github/providers/acme"


@pytest.fixture
def github() -> Iterator[FakeGithubOidc]:
    with fake_github_oidc() as fake:
        yield fake


def test_github_token_for_an_audience(github: FakeGithubOidc) -> None:
    token = oidc.subject_token("github", "sts.amazonaws.com", timeout=5, profile="p", environ=github.env())
    assert token == github.issued[-1]
    [req] = github.requests
    assert req["audience"] == "sts.amazonaws.com" and req["api-version"] == "2.0"
    assert req["authorization"] == f"bearer {github.request_token}"
    # Neither the ID token nor the request token can reach a log line or an error.
    assert REDACTOR(f"x {token} {github.request_token}") == "x *** ***"


@pytest.mark.parametrize("missing", ["ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
def test_missing_github_variable_is_named(github: FakeGithubOidc, missing: str) -> None:
    env = {k: v for k, v in github.env().items() if k != missing}
    with pytest.raises(SourceError) as err:
        oidc.subject_token("github", "aud", timeout=5, profile="p", environ=env)
    assert f"the CI variable {missing} is not set" in err.value.message
    assert "id-token: write" in err.value.message and err.value.retryable is False


def test_refused_request_hints_at_the_permission(github: FakeGithubOidc) -> None:
    github.status = 403
    with pytest.raises(SourceError, match=r"HTTP 403 \(does the job have `permissions: id-token: write`"):
        oidc.subject_token("github", "aud", timeout=5, profile="p", environ=github.env())


def test_unreachable_endpoint_is_a_bounded_error() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/x?a=1", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot reach GitHub's ID-token endpoint"):
        oidc.subject_token("github", "aud", timeout=2, profile="p", environ=env)
    assert time.monotonic() - start < 4


def test_gitlab_variable() -> None:
    env = {"ID_TOKEN": "eyJx"}
    assert oidc.subject_token("gitlab:ID_TOKEN", "ignored", timeout=1, profile="p", environ=env) == "eyJx"
    with pytest.raises(SourceError, match=r"CI variable AWS_ID_TOKEN is not set; declare it in \.gitlab-ci"):
        oidc.subject_token("gitlab:AWS_ID_TOKEN", "x", timeout=1, profile="p", environ={})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"oidc": "gitlab"}, 'expected "github" or "gitlab:VARNAME"'),
        ({"oidc": "gitlab:1X"}, 'expected "github" or "gitlab:VARNAME"'),
        ({"oidc": "circleci"}, 'expected "github" or "gitlab:VARNAME"'),
        ({"oidc_audience": "x"}, "oidc_audience: needs oidc"),
        ({"oidc": "gitlab:T", "oidc_audience": "x"}, "aud under id_tokens"),
    ],
)
def test_check(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        oidc.check(settings, "p")
    oidc.check({"oidc": "github", "oidc_audience": "x"}, "p")
    oidc.check({"oidc": "gitlab:ID_TOKEN"}, "p")


def test_google_provider_names() -> None:
    assert federation.google_provider(PROVIDER, "p") == PROVIDER
    assert federation.google_provider("//iam.googleapis.com/" + PROVIDER, "p") == PROVIDER
    assert federation.google_audience(PROVIDER) == "https://iam.googleapis.com/" + PROVIDER
    with pytest.raises(ConfigError, match="workload_identity_provider: expected projects/NUMBER"):
        federation.google_provider("projects/1/pools/x", "p")


def test_google_credentials_file_is_private_and_gone_afterwards(short_tmp: str) -> None:
    with federation.google_credentials_file(PROVIDER, "eyJ.subject.token", rundir=short_tmp) as path:
        info = json.loads(Path(path).read_text())
        token_path = info["credential_source"]["file"]
        assert Path(token_path).read_text() == "eyJ.subject.token"
        for p in (path, token_path, os.path.dirname(path)):
            assert stat.S_IMODE(os.stat(p).st_mode) in (0o600, 0o700)
        assert info["audience"] == "//iam.googleapis.com/" + PROVIDER
        assert info["subject_token_type"] == federation.JWT_TYPE
    assert not os.path.exists(path) and not os.path.exists(token_path)


# -- the clouds ------------------------------------------------------------------------------


def test_google_workload_identity_federation_with_the_github_token(
    github: FakeGithubOidc, tmp_path: Path, short_tmp: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", short_tmp)
    google: FakeGoogle
    for google in fake_google():
        world = World(tmp_path, google)
        source = world.source(oidc="github", workload_identity_provider=PROVIDER, env=github.env())
        cred = source.fetch(FetchRequest(profile="p", timeout=10))
        issued = google.find(cred.fields["token"])
        assert issued is not None and issued.grant == "sts"
        [jwt] = github.issued
        assert issued.principal == f"principal://{'//iam.googleapis.com/' + PROVIDER}/subject/{jwt}"
        assert github.requests[0]["audience"] == "https://iam.googleapis.com/" + PROVIDER
        assert cred.expires_at is not None and cred.expires_at > time.time() + 3000
        assert os.listdir(os.path.join(short_tmp, "tokend", "oidc")) == []  # nothing left on disk


def test_google_options_go_together() -> None:
    from tests.sources.test_contract import profile_toml
    from tokend.core import config

    # Checked when the config is loaded, not at the first fetch.
    with pytest.raises(ConfigError, match="oidc and workload_identity_provider go together"):
        config.parse(profile_toml("google", {"oidc": "github"}), None)
    with pytest.raises(ConfigError, match="go together"):
        config.parse(profile_toml("google", {"workload_identity_provider": PROVIDER}), None)


def test_azure_client_assertion_is_the_github_token(
    azure_env: AzureEnv, entra: FakeEntra, github: FakeGithubOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.sources.test_azure import fetch, make

    github.fixed_token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvZGVwbG95In0.c2ln"
    entra.register("app-gh", federated_tokens={github.fixed_token})
    for key, value in github.env().items():
        monkeypatch.setenv(key, value)
    options: dict[str, Any] = {
        "credential": "workload-identity",
        "oidc": "github",
        "client_id": "app-gh",
        "tenant_id": entra.tenant,
        "authority": entra.url,
        "disable_instance_discovery": True,
    }
    assert fetch(make(options)).fields["token"].startswith("entra-federated-")
    assert github.requests[0]["audience"] == oidc.AZURE_AUDIENCE
    with pytest.raises(ConfigError, match='needs credential = "workload-identity"'):
        fetch(make({**options, "credential": "client-secret"}))


def test_azure_names_the_missing_ci_variable(azure_env: AzureEnv, entra: FakeEntra) -> None:
    from tests.sources.test_azure import fetch, make

    options: dict[str, Any] = {
        "credential": "workload-identity",
        "oidc": "github",
        "client_id": "app-gh",
        "tenant_id": entra.tenant,
        "authority": entra.url,
        "disable_instance_discovery": True,
    }
    with pytest.raises(SourceError) as err:
        fetch(make(options))
    expected = 'oidc = "github": the CI variable ACTIONS_ID_TOKEN_REQUEST_URL is not set'
    assert err.value.message.startswith(expected)
