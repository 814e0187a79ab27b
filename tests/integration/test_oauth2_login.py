"""``grant = "device_code"``: ``tokend login`` against a real OpenID provider, the refresh token in a
real Secret Service (gnome-keyring), rotated on every refresh and kept across daemon restarts.

The person's part is played by ``approve_device``/``refuse_device``: HTTP requests through the
provider's own device pages (enter the code, sign in, consent, or cancel).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator, Mapping

import pytest
import requests

from tests.fakes.oidc_provider import (
    Provider,
    approve_browser,
    approve_device,
    oidc_provider,
    public_device_client,
    public_native_client,
    refuse_device,
)
from tokend.sources.oauth2.store import identity_of, key_of

from .conftest import TOKEND, TOKEND_PRINT, Sandbox, SecretService

PROMPT = re.compile(r"^To sign in for (\S+), open (\S+)(?: and enter the code (\S+))?$", re.M)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider([public_device_client("cli"), public_native_client("native")]) as p:
        yield p


def config(issuer: str, client: str = "cli", grant: str = "device_code", token: str = "access") -> str:
    return f"""
        [profiles.gateway]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "{client}"
        grant = "{grant}"
        scopes = ["openid", "offline_access"]
        token = "{token}"
        """


def login(sandbox: Sandbox, env: Mapping[str, str], person: str) -> subprocess.CompletedProcess[str]:
    """``tokend login gateway --no-browser`` with the person acting on what it prints."""
    proc = subprocess.Popen(
        [TOKEND, "login", "gateway", "--no-browser", "--timeout", "90"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # printed and flushed before any wait, though stderr is a pipe
        found = PROMPT.match(first.strip())
        assert found and found.group(1) == "gateway", first
        if person == "browser":
            url = found.group(2)
            # PKCE S256 and a loopback redirect, as RFC 8252 asks of native apps.
            assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
            assert "Signed in." in approve_browser(url)
        else:
            act = approve_device if person == "approve" else refuse_device
            act(found.group(2), found.group(3))
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, first + err)


def stored(env: Mapping[str, str], issuer: str | None, client: str = "cli") -> str | None:
    """The refresh token in the keychain for the identity (``issuer``, ``client``); issuer None: the
    entry an older tokend kept under the profile's name (gateway)."""
    key = key_of(identity_of({"issuer": issuer, "client_id": client})) if issuer else "gateway"
    done = subprocess.run(
        [TOKEND.replace("/tokend", "/python"), "-c",
         f"import keyring; print(keyring.get_password('tokend-oauth2', {key!r}) or '')"],
        env=dict(env), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    value = done.stdout.strip()
    if not value:
        return None
    token = json.loads(value)["refresh_token"] if value.startswith("{") else value
    assert isinstance(token, str)
    return token


@pytest.mark.timeout(240)
def test_device_login_refresh_rotation_across_restarts_and_revocation(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    sandbox.write_config(config(provider.issuer))
    env = secret_service.env
    daemon = sandbox.start_daemon(env=env)

    # Twenty callers waiting on a missing sign-in: each is told to log in, none prompts.
    waiting = sandbox.run_many([[TOKEND_PRINT, "gateway"]] * 20, env=env)
    assert {(w.status, w.out, w.err) for w in waiting} == {
        (4, "", "tokend: gateway: not signed in; run: tokend login gateway\n")
    }, waiting

    done = login(sandbox, env, "approve")
    assert done.returncode == 0, done
    assert "gateway: signed in" in done.stderr
    first_refresh = stored(env, provider.issuer)
    assert first_refresh

    refreshes = provider.grants("refresh_token")
    served = sandbox.run_many([[TOKEND_PRINT, "gateway"]] * 20, env=env)
    assert {w.status for w in served} == {0} and len({w.out for w in served}) == 1, served
    assert provider.grants("refresh_token") == refreshes + 1, "one refresh for twenty callers"
    token = served[0].out.strip()
    rotated = stored(env, provider.issuer)
    assert rotated and rotated != first_refresh, "the rotated refresh token replaced the stored one"

    # A new daemon finds the rotated token in the keychain. Had the old one been kept, the provider
    # would see a used refresh token and revoke the grant: this fetch would be exit 4.
    daemon.stop()
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("gateway", env=env)
    assert r.status == 0 and r.out.strip() not in ("", token), r
    latest = stored(env, provider.issuer)
    assert latest and latest != rotated

    # Revoked at the provider: a dead refresh token is exit 4 naming the login to run.
    daemon.stop()
    revoked = requests.post(
        f"{provider.issuer}/token/revocation", data={"client_id": "cli", "token": latest}, timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("gateway", env=env)
    assert (r.status, r.out) == (4, ""), r
    assert r.err_lines == [
        "tokend: gateway: the sign-in has expired or was revoked; run: tokend login gateway"
    ], r
    assert stored(env, provider.issuer) is None, "a refused refresh token is dropped from the keychain"
    daemon.stop()
    log = daemon.log_text()
    assert first_refresh not in log and latest not in log and token not in log


@pytest.mark.timeout(180)
def test_consent_denied(sandbox: Sandbox, secret_service: SecretService, provider: Provider) -> None:
    sandbox.write_config(config(provider.issuer))
    done = login(sandbox, secret_service.env, "refuse")
    assert done.returncode == 2, done
    assert done.stderr.splitlines()[-1] == "tokend: gateway: the sign-in was denied", done
    assert stored(secret_service.env, provider.issuer) is None


@pytest.mark.timeout(180)
def test_authorization_code_with_pkce_serves_the_id_token(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    sandbox.write_config(config(provider.issuer, "native", "authorization_code", "id"))
    env = secret_service.env
    done = login(sandbox, env, "browser")
    assert done.returncode == 0, done
    assert stored(env, provider.issuer, "native")
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("gateway", env=env)
    assert r.status == 0, r
    payload = r.out.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("alice", "native", provider.issuer)

    out = sandbox.tokend("logout", "gateway", env=env)
    assert out.status == 0 and stored(env, provider.issuer, "native") is None, out
    r = sandbox.print_("gateway", env=env)
    assert (r.status, r.err_lines) == (4, ["tokend: gateway: not signed in; run: tokend login gateway"]), r
    daemon.stop()


@pytest.mark.timeout(120)
def test_an_expired_device_code(sandbox: Sandbox) -> None:
    with oidc_provider([public_device_client("cli")], device_code_ttl=3) as short:
        sandbox.write_config(config(short.issuer))
        done = sandbox.tokend("login", "gateway", "--no-browser", timeout=60)  # nobody approves
    assert done.status == 2, done
    assert done.err_lines[0].startswith("To sign in for gateway, open "), done
    assert done.err_lines[-1] == (
        "tokend: gateway: the sign-in code expired before it was approved; run: tokend login gateway"
    ), done
