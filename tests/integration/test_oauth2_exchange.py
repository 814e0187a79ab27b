"""``grant = "token_exchange"`` (RFC 8693): a profile's token exchanged for a gateway token, through a
real daemon, against oidc-provider with a token-exchange grant that verifies the subject's signature."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.fakes.oidc_provider import RESOURCE, TOKEN_EXCHANGE, Provider, confidential, oidc_provider

from .conftest import Sandbox

CI_SECRET = "s3cret-ci-job-0001"
OTHER_SECRET = "s3cret-other-0002"
EXCHANGER_SECRET = "s3cret-exchanger-0003"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    clients = [
        confidential("ci", CI_SECRET),
        confidential("other", OTHER_SECRET),
        confidential("exchanger", EXCHANGER_SECRET, grants=(TOKEN_EXCHANGE,)),
    ]
    with oidc_provider(clients, exchange={"exchanger": ["ci"]}) as p:
        yield p


def subject_profile(name: str, client: str, issuer: str) -> str:
    return f"""
        [profiles.{name}]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "{client}"
        client_secret = "env:{client.upper()}_SECRET"
        scopes = ["ai.invoke"]
        resource = "{RESOURCE}"
        """


def exchange_profile(name: str, subject: str, issuer: str) -> str:
    return f"""
        [profiles.{name}]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "exchanger"
        client_secret = "env:EXCHANGER_SECRET"
        grant = "token_exchange"
        subject = "{subject}"
        subject_token_type = "access_token"
        """


@pytest.mark.timeout(120)
def test_token_exchange_from_another_profile(sandbox: Sandbox, provider: Provider) -> None:
    sandbox.write_config(
        subject_profile("ci-token", "ci", provider.issuer)
        + subject_profile("other-token", "other", provider.issuer)
        + exchange_profile("gateway", "ci-token", provider.issuer)
        + exchange_profile("stranger", "other-token", provider.issuer)
    )
    env = sandbox.env(CI_SECRET=CI_SECRET, OTHER_SECRET=OTHER_SECRET, EXCHANGER_SECRET=EXCHANGER_SECRET)
    daemon = sandbox.start_daemon(env=env)

    r = sandbox.print_("gateway", env=env)
    assert r.status == 0, r
    token = r.out.strip()
    # The provider says whose token was exchanged: the ci client's, verified by its signature.
    seen = requests.post(
        f"{provider.issuer}/token/introspection",
        data={"token": token},
        auth=("exchanger", EXCHANGER_SECRET),
        timeout=30,
    ).json()
    assert (seen["active"], seen["client_id"], seen["subject"]) == (True, "exchanger", "ci"), seen
    assert sandbox.profile_status("ci-token")["fetches"] == 1  # the subject is cached like any profile

    r = sandbox.print_("stranger", env=env)
    assert (r.status, r.out) == (1, ""), r
    assert r.err_lines == [
        "tokend: stranger: the provider refused the token request for client 'exchanger': "
        "invalid_grant (subject other may not be exchanged)"
    ], r
    daemon.stop()
    assert token not in daemon.log_text()
