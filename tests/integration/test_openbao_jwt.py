"""CI jobs log in to a real OpenBao with their own ID token: ``auth = "jwt"`` with ``oidc``.

OpenBao's jwt auth method trusts the key of a fake GitHub Actions ID-token
endpoint (``jwt_validation_pubkeys``), bound to its issuer, an audience and
the repository claim. The job has no Vault token and no JWT in a file: with
``oidc = "github"`` tokend asks ``$ACTIONS_ID_TOKEN_REQUEST_URL`` for a token
for ``oidc_audience`` and logs in with it; ``oidc = "gitlab:VAR"`` takes the
job's ``id_tokens:`` variable. ``CI=true`` makes ``tokend-print`` daemonless,
as in a real job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes.github_oidc import ISSUER, REPOSITORY, FakeGithubOidc, _handler
from tests.fakes.server import LocalHTTPServer
from tests.integration.conftest import Sandbox
from tests.integration.openbao import JwtSigner, OpenBao, openbao

__all__ = ["openbao"]  # a fixture, used by name

AUDIENCE = "https://vault.acme.example"


@dataclass
class SigningGithubOidc(FakeGithubOidc):
    """The fake ID-token endpoint, its tokens signed by a key OpenBao is told to trust."""

    signer: JwtSigner = field(default_factory=JwtSigner)

    def claims(self, audience: str) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": ISSUER,
            "sub": f"repo:{REPOSITORY}:ref:refs/heads/main",
            "aud": audience,
            "repository": REPOSITORY,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        }

    def jwt(self, audience: str) -> str:
        token = self.signer.sign(self.claims(audience))
        with self.lock:
            self.issued.append(token)
        return token


@pytest.fixture
def github() -> Iterator[SigningGithubOidc]:
    fake = SigningGithubOidc()
    with LocalHTTPServer(_handler(fake), name="fake-github-oidc", poll_interval=0.05) as server:
        fake.url = server.url
        yield fake


def _configure(server: OpenBao, mount: str, signer: JwtSigner) -> None:
    server.enable("jwt", mount, auth=True)
    server.policy("ci-reader", 'path "secret/data/ci/*" { capabilities = ["read"] }\n')
    server.api(
        "POST",
        f"auth/{mount}/config",
        {"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": ISSUER},
    )
    server.api(
        "POST",
        f"auth/{mount}/role/deploy",
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [AUDIENCE],
            "bound_claims": {"repository": REPOSITORY},
            "token_policies": ["ci-reader"],
            "token_ttl": "10m",
        },
    )


def _ci_env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return sandbox.env(CI="true", GITHUB_ACTIONS="true", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", **extra)


def _profile(name: str, server: OpenBao, mount: str, **settings: str) -> str:
    lines = [
        f"[profiles.{name}]",
        'source = "vault"',
        f'address = "{server.url}"',
        'auth = "jwt"',
        f'auth_mount = "{mount}"',
        'role = "deploy"',
        'mount = "secret"',
        'path = "ci/deploy"',
    ]
    lines += [f'{k} = "{v}"' for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def test_github_job_logs_in_with_its_id_token(
    sandbox: Sandbox, openbao: OpenBao, github: SigningGithubOidc
) -> None:
    _configure(openbao, "jwt-gha", github.signer)
    openbao.bao("kv", "put", "secret/ci/deploy", "value=from-the-ci-login")
    sandbox.write_config(
        _profile("ci", openbao, "jwt-gha", oidc="github", oidc_audience=AUDIENCE)
        + _profile("wrong-aud", openbao, "jwt-gha", oidc="github", oidc_audience="https://elsewhere.example")
    )
    env = _ci_env(sandbox, **github.env())
    r = sandbox.print_("ci", env=env, timeout=60)
    assert (r.status, r.out) == (0, "from-the-ci-login\n"), r
    asked = [q for q in github.requests if q.get("audience")]
    assert [q["audience"] for q in asked] == [AUDIENCE], github.requests
    assert asked[0]["authorization"] == f"bearer {github.request_token}"
    # An ID token for another audience: the role refuses it, said in one line naming the setting.
    r = sandbox.print_("wrong-aud", env=env, timeout=60)
    assert r.status == 1 and r.out == "", r
    assert len(r.err_lines) == 1, r
    line = r.err_lines[0]
    assert "wrong-aud" in line and "refused the jwt login at auth/jwt-gha" in line, line
    assert "audience" in line and "https://elsewhere.example" in line and "oidc_audience" in line, line
    for token in github.issued:
        assert token not in r.err


def test_github_job_without_id_token_permission_is_one_line(
    sandbox: Sandbox, openbao: OpenBao, github: SigningGithubOidc
) -> None:
    sandbox.write_config(_profile("ci", openbao, "jwt-gha", oidc="github", oidc_audience=AUDIENCE))
    r = sandbox.print_("ci", env=_ci_env(sandbox), timeout=60)
    assert r.status == 1 and len(r.err_lines) == 1, r
    assert "ACTIONS_ID_TOKEN_REQUEST_URL is not set" in r.err and "id-token: write" in r.err, r


def test_gitlab_job_logs_in_with_its_id_tokens_variable(sandbox: Sandbox, openbao: OpenBao) -> None:
    signer = JwtSigner()
    _configure(openbao, "jwt-gitlab", signer)
    openbao.bao("kv", "put", "secret/ci/deploy", "value=from-gitlab")
    sandbox.write_config(_profile("ci", openbao, "jwt-gitlab", oidc="gitlab:VAULT_ID_TOKEN"))
    claims = SigningGithubOidc(signer=signer).claims(AUDIENCE)
    r = sandbox.print_("ci", env=_ci_env(sandbox, VAULT_ID_TOKEN=signer.sign(claims)), timeout=60)
    assert (r.status, r.out) == (0, "from-gitlab\n"), r


def test_a_daemon_started_in_the_job_keeps_the_id_token_variables(
    sandbox: Sandbox, openbao: OpenBao, github: SigningGithubOidc
) -> None:
    """One daemon per job: its environment allow-list keeps what the ``oidc`` setting reads."""
    _configure(openbao, "jwt-daemon", github.signer)
    openbao.bao("kv", "put", "secret/ci/deploy", "value=from-the-job-daemon")
    sandbox.write_config(_profile("ci", openbao, "jwt-daemon", oidc="github", oidc_audience=AUDIENCE))
    env = _ci_env(sandbox, TOKEND_NO_DAEMON="0", **github.env())
    sandbox.start_daemon(env)
    r = sandbox.print_("ci", env=env, timeout=60)
    assert (r.status, r.out) == (0, "from-the-job-daemon\n"), r
    assert [q["audience"] for q in github.requests if q.get("audience")] == [AUDIENCE]
