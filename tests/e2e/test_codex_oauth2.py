"""The real Codex CLI gets its bearer token from ``tokend-print`` for an oauth2 profile.

The token comes from a real OpenID provider (oidc-provider, tests/fakes/oidc_provider.py): a JWT
access token for the gateway's resource (RFC 8707). The fake Responses API plays the gateway:
it checks the token's signature against the provider's published keys (its ``jwks_uri``) and its
audience, and refuses anything else with a 401. The Codex CLI is found or installed as
tests/e2e/test_codex.py does (skipped without it, failing when ``TOKEND_REQUIRE_E2E=1``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest
import requests
import tomlkit

from tests.fakes.oidc_provider import Provider, confidential, oidc_provider, public_device_client
from tests.fakes.responses_api import FakeResponsesApi, JwtCheck
from tests.integration.conftest import TOKEND_PRINT, Result, Sandbox, SecretService, secret_service  # noqa: F401
from tests.integration.test_oauth2_login import login

GATEWAY = "https://gateway.example.test"
OTHER_API = "https://other.example.test"
SECRET = "s3cret-codex-gateway-0001"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    clients = [confidential("codex-gw", SECRET), public_device_client("codex-cli")]
    with oidc_provider(clients, resources=(GATEWAY, OTHER_API)) as p:
        yield p


def claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def profile(name: str, issuer: str, resource: str) -> str:
    return f"""
        [profiles.{name}]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "codex-gw"
        client_secret = "env:GATEWAY_SECRET"
        scopes = ["ai.invoke"]
        resource = "{resource}"
        """


def codex_exec(exe: str, box: Sandbox, env: dict[str, str], api: FakeResponsesApi) -> Result:
    argv = [
        exe,
        "exec",
        "--skip-git-repo-check",
        "-c",
        'model_provider="gateway"',
        "-c",
        f'model_providers.gateway.base_url="{api.url}"',  # the user's edit of the placeholder
        "-m",
        "fake-model",
        "say hi",
    ]
    return box.run(argv, env=env, timeout=120)


def bearer(api: FakeResponsesApi, token: str | None) -> int:
    """The status the fake answers a Responses request carrying ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(f"{api.url}/responses", headers=headers, json={}, timeout=30).status_code


@pytest.mark.timeout(300)
def test_codex_with_a_gateway_token_from_an_openid_provider(
    codex: str,
    sandbox: Sandbox,
    provider: Provider,
) -> None:
    sandbox.write_config(
        profile("gateway", provider.issuer, GATEWAY) + profile("other", provider.issuer, OTHER_API)
    )
    codex_home = sandbox.root / "codex-home"
    env = {
        k: v
        for k, v in sandbox.env(CODEX_HOME=str(codex_home), GATEWAY_SECRET=SECRET).items()
        if not k.startswith(("OPENAI_", "CODEX_API"))
    }
    integrate = sandbox.tokend("integrate", "codex", "gateway", env=env)
    assert integrate.status == 0, integrate.err
    written = tomlkit.parse((codex_home / "config.toml").read_text())["model_providers"]["gateway"]  # type: ignore[index]
    assert written["auth"]["command"] == TOKEND_PRINT and os.path.isabs(written["auth"]["command"])  # type: ignore[index]
    assert list(written["auth"]["args"]) == ["gateway", "--refresh-on-repeat"]  # type: ignore[index]

    revoked: set[str] = set()
    check = JwtCheck(provider.issuer, GATEWAY)
    with FakeResponsesApi(lambda t: t not in revoked, jwt=check) as api:
        daemon = sandbox.start_daemon(env=env)
        first = codex_exec(codex, sandbox, env, api)
        assert first.status == 0, first.err[-3000:]
        assert "pong from the fake" in first.out
        [(t1, status)] = [(s.key, s.status) for s in api.calls()]
        assert status == 200 and t1 is not None
        assert (claims(t1)["aud"], claims(t1)["client_id"]) == (GATEWAY, "codex-gw")
        issued = provider.grants("client_credentials")

        # The gateway revokes the token the daemon still caches: Codex gets a 401, runs
        # tokend-print again, and (same parent, within the window) is handed a new token.
        revoked.add(t1)
        second = codex_exec(codex, sandbox, env, api)
        assert second.status == 0, second.err[-3000:]
        assert "pong from the fake" in second.out
        calls = [(s.key, s.status) for s in api.calls()[1:]]
        assert len(calls) == 2 and calls[0] == (t1, 401) and calls[1][1] == 200, calls
        t2 = calls[1][0]
        assert t2 not in (None, t1) and claims(t2)["aud"] == GATEWAY
        assert provider.grants("client_credentials") == issued + 1
        daemon.wait_for_log("served as --refresh")

        # A third Codex process is served the new token from the daemon's cache.
        third = codex_exec(codex, sandbox, env, api)
        assert third.status == 0 and api.calls()[-1].key == t2, third.err[-3000:]
        assert provider.grants("client_credentials") == issued + 1

        # The gateway takes nothing but its own tokens from this provider.
        other = sandbox.print_("other", env=env).out.strip()
        assert claims(other)["aud"] == OTHER_API
        head, body, signature = t2.split(".")
        forged = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
        tried = (t2, other, forged, "opaque-token", None)
        assert [bearer(api, t) for t in tried] == [200, 401, 401, 401, 401]
        assert any(r.startswith("aud ") for r in check.refused) and any(
            r.startswith("signature") for r in check.refused
        ), check.refused
        daemon.stop()
        assert t1 not in daemon.log_text() and t2 not in daemon.log_text()


@pytest.mark.timeout(300)
def test_codex_with_a_signed_in_device_code_profile(
    codex: str,
    sandbox: Sandbox,
    secret_service: SecretService,  # noqa: F811
    provider: Provider,
) -> None:
    sandbox.write_config(f"""
        [profiles.gateway]
        source = "oauth2"
        issuer = "{provider.issuer}"
        client_id = "codex-cli"
        grant = "device_code"
        scopes = ["openid", "offline_access", "ai.invoke"]
        resource = "{GATEWAY}"
        """)
    codex_home = sandbox.root / "codex-home"
    env = {
        k: v
        for k, v in {**secret_service.env, "CODEX_HOME": str(codex_home)}.items()
        if not k.startswith(("OPENAI_", "CODEX_API"))
    }
    signed_in = login(sandbox, env, "approve")
    assert signed_in.returncode == 0, signed_in
    assert sandbox.tokend("integrate", "codex", "gateway", env=env).status == 0

    revoked: set[str] = set()
    with FakeResponsesApi(lambda t: t not in revoked, jwt=JwtCheck(provider.issuer, GATEWAY)) as api:
        daemon = sandbox.start_daemon(env=env)
        first = codex_exec(codex, sandbox, env, api)
        assert first.status == 0 and "pong from the fake" in first.out, first.err[-3000:]
        t1 = api.calls()[-1].key
        assert t1 is not None and (claims(t1)["aud"], claims(t1)["sub"]) == (GATEWAY, "alice")
        refreshed = provider.grants("refresh_token")

        # Revoked by the gateway: the 401 makes Codex ask again, and the daemon exchanges the
        # (rotated) refresh token for a new access token.
        revoked.add(t1)
        second = codex_exec(codex, sandbox, env, api)
        assert second.status == 0 and "pong from the fake" in second.out, second.err[-3000:]
        calls = [(s.key, s.status) for s in api.calls()[1:]]
        assert len(calls) == 2 and calls[0] == (t1, 401) and calls[1][1] == 200, calls
        assert calls[1][0] not in (None, t1) and claims(str(calls[1][0]))["sub"] == "alice"
        assert provider.grants("refresh_token") == refreshed + 1
        daemon.stop()
