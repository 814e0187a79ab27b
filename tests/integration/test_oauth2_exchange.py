"""``grant = "token_exchange"`` (RFC 8693): a profile's token exchanged for a gateway token, through a
real daemon, against oidc-provider with a token-exchange grant that verifies the subject's signature."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.fakes.oidc_provider import (
    JWT_BEARER,
    RESOURCE,
    TOKEN_EXCHANGE,
    Provider,
    confidential,
    oidc_provider,
)

from .conftest import Sandbox

CI_SECRET = "s3cret-ci-job-0001"
OTHER_SECRET = "s3cret-other-0002"
EXCHANGER_SECRET = "s3cret-exchanger-0003"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    clients = [
        confidential("ci", CI_SECRET),
        confidential("other", OTHER_SECRET),
        confidential("exchanger", EXCHANGER_SECRET, grants=(TOKEN_EXCHANGE, JWT_BEARER)),
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


def exchange_profile(name: str, subject: str, issuer: str, grant: str = "token_exchange") -> str:
    return f"""
        [profiles.{name}]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "exchanger"
        client_secret = "env:EXCHANGER_SECRET"
        grant = "{grant}"
        subject = "{subject}"
        subject_token_type = "access_token"
        """


def introspect(provider: Provider, token: str) -> dict[str, object]:
    seen: dict[str, object] = requests.post(
        f"{provider.issuer}/token/introspection",
        data={"token": token},
        auth=("exchanger", EXCHANGER_SECRET),
        timeout=30,
    ).json()
    return seen


@pytest.mark.timeout(120)
def test_token_exchange_from_another_profile(sandbox: Sandbox, provider: Provider) -> None:
    sandbox.write_config(
        subject_profile("ci-token", "ci", provider.issuer)
        + subject_profile("other-token", "other", provider.issuer)
        + exchange_profile("gateway", "ci-token", provider.issuer)
        + exchange_profile("stranger", "other-token", provider.issuer)
        + exchange_profile("bearer", "ci-token", provider.issuer, grant="jwt_bearer")
    )
    env = sandbox.env(CI_SECRET=CI_SECRET, OTHER_SECRET=OTHER_SECRET, EXCHANGER_SECRET=EXCHANGER_SECRET)
    daemon = sandbox.start_daemon(env=env)

    r = sandbox.print_("gateway", env=env)
    assert r.status == 0, r
    token = r.out.strip()
    # The provider says whose token was exchanged: the ci client's, verified by its signature.
    seen = introspect(provider, token)
    assert (seen["active"], seen["client_id"], seen["subject"]) == (True, "exchanger", "ci"), seen
    assert sandbox.profile_status("ci-token")["fetches"] == 1  # the subject is cached like any profile

    r = sandbox.print_("stranger", env=env)
    assert (r.status, r.out) == (1, ""), r
    assert r.err_lines == [
        "tokend: stranger: the provider refused the token request for client 'exchanger': "
        "invalid_grant (subject other may not be exchanged)"
    ], r

    # RFC 7523: the same subject token sent as the jwt-bearer assertion.
    r = sandbox.print_("bearer", env=env)
    assert r.status == 0, r
    seen = introspect(provider, r.out.strip())
    assert (seen["active"], seen["client_id"], seen["subject"]) == (True, "exchanger", "ci"), seen
    assert provider.grants(JWT_BEARER) == 1 and provider.grants(TOKEN_EXCHANGE) == 1
    daemon.stop()
    assert token not in daemon.log_text()
