"""``grant = "refresh_token"``: a refresh token obtained elsewhere, given by reference, exchanged for
access tokens by real daemons against a real OpenID provider that rotates it on every use; the
rotated one kept in a real Secret Service (gnome-keyring) across daemon restarts."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests

from tests.fakes.oidc_provider import RESOURCE, Provider, device_login, oidc_provider, public_device_client

from .conftest import Sandbox, SecretService
from .test_oauth2_login import login, stored

SCOPE = "openid offline_access ai.invoke"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider([public_device_client("script")]) as p:
        yield p


def claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def config(issuer: str, ref: str) -> str:
    return f"""
        [profiles.gw]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "script"
        grant = "refresh_token"
        refresh_token = "{ref}"
        scopes = ["openid", "offline_access", "ai.invoke"]
        resource = "{RESOURCE}"
        """


def write_secret(path: Path, value: str) -> None:
    path.write_text(value + "\n")
    os.chmod(path, 0o600)


def fetch_after_restart(sandbox: Sandbox, env: Mapping[str, str]) -> tuple[int, str, list[str]]:
    """``tokend-print gw`` from a new daemon (nothing cached): the refresh token is used."""
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("gw", env=env)
    daemon.stop()
    return r.status, r.out.strip(), r.err_lines


@pytest.mark.timeout(240)
def test_a_refresh_token_file_then_its_rotations_from_the_keychain(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    original = device_login(provider.issuer, "script", scope=SCOPE, resource=RESOURCE)["refresh_token"]
    secret = sandbox.root / "refresh-token"
    write_secret(secret, original)
    sandbox.write_config(config(provider.issuer, f"file:{secret}"))
    env = secret_service.env

    status, first, err = fetch_after_restart(sandbox, env)
    assert status == 0, err
    assert (claims(first)["aud"], claims(first)["client_id"]) == (RESOURCE, "script")
    rotated = stored(env, provider.issuer, "script")
    assert rotated and rotated != original, "the rotated refresh token went to the keychain"

    # The file still holds the used original: presenting it again would make the provider revoke
    # the grant. A new daemon uses the rotated token from the keychain instead.
    status, second, err = fetch_after_restart(sandbox, env)
    assert status == 0 and second not in ("", first), err
    latest = stored(env, provider.issuer, "script")
    assert latest and latest not in (original, rotated)
    assert provider.grants("refresh_token") == 2

    # Revoked at the provider: exit 4, naming the reference to put a new refresh token in.
    revoked = requests.post(
        f"{provider.issuer}/token/revocation", data={"client_id": "script", "token": latest}, timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    status, out, err = fetch_after_restart(sandbox, env)
    assert (status, out) == (4, ""), err
    assert err == [
        "tokend: gw: the provider refused the refresh token (invalid_grant: expired or revoked); "
        f"put a new one in file:{secret}"
    ]
    assert stored(env, provider.issuer, "script") is None

    # A new sign-in's refresh token put in the file is used at once.
    again = device_login(provider.issuer, "script", scope=SCOPE, resource=RESOURCE)["refresh_token"]
    write_secret(secret, again)
    status, third, err = fetch_after_restart(sandbox, env)
    assert status == 0 and claims(third)["aud"] == RESOURCE, err
    log = "".join(d.log_text() for d in sandbox.daemons)
    assert not any(t in log for t in (original, rotated, latest, first, second, third))


@pytest.mark.timeout(180)
def test_a_new_refresh_token_in_the_reference_wins_over_one_rotated_from_the_old(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    first = device_login(provider.issuer, "script", scope=SCOPE, resource=RESOURCE)["refresh_token"]
    env = {**secret_service.env, "GW_REFRESH": first}
    sandbox.write_config(config(provider.issuer, "env:GW_REFRESH"))
    status, _, err = fetch_after_restart(sandbox, env)
    assert status == 0, err
    from_first = stored(env, provider.issuer, "script")

    # Another sign-in (say, another person on this account) put in the variable: its grant is used,
    # and the token rotated from the first one is replaced.
    bob = device_login(provider.issuer, "script", scope=SCOPE, resource=RESOURCE, user="bob")
    env["GW_REFRESH"] = bob["refresh_token"]
    status, out, err = fetch_after_restart(sandbox, env)
    assert status == 0, err
    assert claims(out)["sub"] == "bob"
    assert stored(env, provider.issuer, "script") not in (None, from_first)
    login = sandbox.tokend("login", "gw", env=env)
    assert (login.status, login.err_lines) == (
        2,
        ["tokend: gw: grant = 'refresh_token' needs no sign-in: it starts from env:GW_REFRESH"],
    )


@pytest.mark.timeout(180)
def test_in_ci_one_daemon_keeps_the_rotations_in_memory(sandbox: Sandbox) -> None:
    with oidc_provider([public_device_client("script")], access_ttl=15) as short:
        original = device_login(short.issuer, "script", scope=SCOPE, resource=RESOURCE)["refresh_token"]
        sandbox.write_config(config(short.issuer, "env:GW_REFRESH") + "min_ttl = 5\n")
        # No keychain here: CI=true must not look for one.
        env = {**sandbox.env(), "CI": "true", "TOKEND_NO_DAEMON": "0", "GW_REFRESH": original}
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        r = sandbox.print_("gw", env=env)  # starts the daemon
        assert r.status == 0 and claims(r.out.strip())["aud"] == RESOURCE, r
        assert sandbox.daemon_pids(), "the job's calls go through one daemon"
        # The daemon refreshes before the 15 s token nears min_ttl, with the rotated token it
        # holds in memory (the original would be refused: it was used once).
        deadline = time.monotonic() + 60
        while short.grants("refresh_token") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert short.grants("refresh_token") >= 3, short.log_text()[-2000:]
        again = sandbox.print_("gw", env=env)
        assert again.status == 0 and again.out.strip() != r.out.strip(), again


@pytest.mark.timeout(180)
def test_a_dead_configured_token_leaves_the_identity_s_sign_in_alone(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    dead = device_login(provider.issuer, "script", scope=SCOPE, resource=RESOURCE)["refresh_token"]
    assert requests.post(
        f"{provider.issuer}/token/revocation", data={"client_id": "script", "token": dead}, timeout=30
    ).status_code == 200
    signed_in = config(provider.issuer, "env:GW_REFRESH").replace("[profiles.gw]", "[profiles.gateway]")
    signed_in = signed_in.replace('grant = "refresh_token"', 'grant = "device_code"')
    signed_in = signed_in.replace('refresh_token = "env:GW_REFRESH"', "")
    sandbox.write_config(config(provider.issuer, "env:GW_REFRESH") + signed_in)
    env = {**secret_service.env, "GW_REFRESH": dead}
    assert login(sandbox, env, "approve").returncode == 0

    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("gw", env=env)
    assert (r.status, r.err_lines) == (
        4,
        ["tokend: gw: the provider refused the refresh token (invalid_grant: expired or revoked); "
         "put a new one in env:GW_REFRESH"],
    ), r  # fmt: skip
    # The refused token was the configured one, not the one `tokend login gateway` stored.
    assert sandbox.print_("gateway", env=env).status == 0
    daemon.stop()
