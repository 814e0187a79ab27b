"""One sign-in per identity: two device-code profiles of one provider and client (``gateway`` for
API A, ``internal`` for API B) share one refresh token, through real ``tokend`` processes, a real
OpenID provider that rotates refresh tokens on every use and a real Secret Service (gnome-keyring).

``notify-send`` is a script that records each call: the daemon tells the person once per identity.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests

from tests.fakes.oidc_provider import Provider, approve_device, oidc_provider, public_device_client
from tokend.sources.oauth2.store import identity_of, key_of

from .conftest import TOKEND, TOKEND_PRINT, Result, Sandbox, SecretService
from .test_oauth2_login import PROMPT, stored

API_A = "https://gateway.example.test"
API_B = "https://internal.example.test"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider([public_device_client("cli")], resources=(API_A, API_B)) as p:
        yield p


def config(issuer: str) -> str:
    return "".join(
        f"""
        [profiles.{name}]
        source = "oauth2"
        issuer = "{issuer}"
        client_id = "cli"
        grant = "device_code"
        scopes = ["openid", "offline_access", "ai.invoke"]
        resource = "{api}"
        """
        for name, api in (("gateway", API_A), ("internal", API_B))
    )


def audience(jwt: str) -> object:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["aud"]


def herd(sandbox: Sandbox, env: Mapping[str, str], n: int = 20) -> list[tuple[str, Result]]:
    names = ["gateway" if i % 2 else "internal" for i in range(n)]
    results = sandbox.run_many([[TOKEND_PRINT, p] for p in names], env=env, timeout=90)
    return list(zip(names, results, strict=True))


def keychain(env: Mapping[str, str], calls: str) -> None:
    """Run ``keyring.CALLS`` against the test's Secret Service."""
    subprocess.run(
        [TOKEND.replace("/tokend", "/python"), "-c", f"from keyring import *; {calls}"],
        env=dict(env), check=True, timeout=60,
    )  # fmt: skip


def notes(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def start_login(profile: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TOKEND, "login", profile, "--no-browser", "--timeout", "90"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def login_both(env: Mapping[str, str]) -> tuple[str, str, int]:
    """``tokend login gateway`` and, while it waits for the person, ``tokend login internal``.
    The person approves the one code printed. Returns both stderrs and the prompts printed."""
    first = start_login("gateway", env)
    second: subprocess.Popen[str] | None = None
    try:
        assert first.stderr is not None
        line = first.stderr.readline()
        found = PROMPT.match(line.strip())
        assert found and found.group(1) == "gateway", line
        # Started while the sign-in is in progress: it waits on the identity's lock and then finds
        # the sign-in done. The person takes a few seconds (and the device flow polls every five
        # seconds), which leaves it time to start on a loaded machine.
        second = start_login("internal", env)
        time.sleep(3)
        approve_device(found.group(2), found.group(3))
        _, err1 = first.communicate(timeout=90)
        _, err2 = second.communicate(timeout=90)
        assert (first.returncode, second.returncode) == (0, 0), (err1, err2)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    both = line + err1 + err2
    return line + err1, err2, len(PROMPT.findall(both))


@pytest.mark.timeout(300)
def test_one_sign_in_serves_every_profile_of_the_identity(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    bindir = sandbox.root / "bin"
    bindir.mkdir()
    noted = sandbox.root / "notify.log"
    (bindir / "notify-send").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{noted}"\n')
    (bindir / "notify-send").chmod(0o755)
    env = {**secret_service.env, "PATH": f"{bindir}:{secret_service.env['PATH']}"}
    sandbox.write_config(config(provider.issuer))
    daemon = sandbox.start_daemon(env=env)

    # Twenty callers of both profiles, nobody signed in: each told to log in, the person told once.
    for name, r in herd(sandbox, env):
        assert (r.status, r.err_lines) == (4, [f"tokend: {name}: not signed in; run: tokend login {name}"]), r
    deadline = time.monotonic() + 10
    while not notes(noted) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(notes(noted)) == 1, notes(noted)

    # Two logins at once, one for each profile: one device flow, one prompt.
    err1, err2, prompts = login_both(env)
    assert prompts == 1 and provider.grants("urn:ietf:params:oauth:grant-type:device_code") == 1, (err1, err2)
    assert "gateway: signed in" in err1 and "internal: signed in by a concurrent tokend login" in err2

    # Both profiles served from the one refresh token, each for its own API. They refresh at the
    # same moment: had both presented the same refresh token, the provider (which rotates it)
    # would have revoked the grant and one profile would be exit 4.
    served: dict[str, set[str]] = {"gateway": set(), "internal": set()}
    for name, r in herd(sandbox, env):
        assert r.status == 0, r
        served[name].add(r.out.strip())
    assert [len(v) for v in served.values()] == [1, 1], served
    [a], [b] = served["gateway"], served["internal"]
    assert (audience(a), audience(b)) == (API_A, API_B)
    assert provider.grants("refresh_token") == 2, "one refresh per profile"
    rotated = stored(env, provider.issuer)
    assert rotated

    # As an older tokend left it: the token under the profile's name. A new daemon moves it to the
    # identity's entry, and each profile then finds the token the other rotated last.
    daemon.stop()
    entry = key_of(identity_of({"issuer": provider.issuer, "client_id": "cli"}))
    keychain(env, f"set_password('tokend-oauth2', 'gateway', {rotated!r}); "
             f"delete_password('tokend-oauth2', {entry!r})")  # fmt: skip
    assert stored(env, provider.issuer) is None and stored(env, None) == rotated
    daemon = sandbox.start_daemon(env=env)
    for name in ("gateway", "internal"):
        r = sandbox.print_(name, env=env)
        assert r.status == 0 and r.out.strip() not in (a, b), r
    assert provider.grants("refresh_token") == 4
    assert stored(env, provider.issuer) not in (None, rotated) and stored(env, None) is None

    # Without a daemon, processes of both profiles at once: each process refreshes on its own, and
    # the identity's lock file keeps two of them from presenting the same refresh token.
    daemon.stop()
    alone = {**env, "TOKEND_NO_DAEMON": "1"}
    for name, r in herd(sandbox, alone, 10):
        assert r.status == 0 and audience(r.out.strip()) == (API_A if name == "gateway" else API_B), r
    assert provider.grants("refresh_token") == 6, "one refresh per profile, the other processes wait"

    # Revoked: both profiles need the sign-in again, and one login brings both back.
    latest = stored(env, provider.issuer)
    assert requests.post(
        f"{provider.issuer}/token/revocation", data={"client_id": "cli", "token": latest}, timeout=30
    ).status_code == 200
    daemon = sandbox.start_daemon(env=env)
    for name, r in herd(sandbox, env):
        assert r.status == 4 and r.err_lines[0].endswith(f"run: tokend login {name}"), r
    err1, err2, prompts = login_both(env)
    assert prompts == 1, (err1, err2)
    assert {r.status for _, r in herd(sandbox, env)} == {0}
    daemon.stop()
    log = daemon.log_text()
    assert a not in log and b not in log and latest not in log


@pytest.mark.timeout(180)
def test_an_older_tokend_s_sign_in_serves_a_sibling_asked_first(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    # An older tokend kept the refresh token under the name of the profile signed in with (gateway),
    # and an older one under another profile of the identity (third). Asking for internal first
    # finds the sign-in: gateway's entry moves to the identity's, third's is dropped; a profile of
    # another client keeps its own.
    from tests.fakes.oidc_provider import device_login

    env = secret_service.env
    signed = device_login(provider.issuer, "cli", scope="openid offline_access ai.invoke", resource=API_B)
    sandbox.write_config(config(provider.issuer) + f"""
        [profiles.third]
        source = "oauth2"
        issuer = "{provider.issuer}"
        client_id = "cli"
        grant = "device_code"

        [profiles.elsewhere]
        source = "oauth2"
        issuer = "{provider.issuer}"
        client_id = "other-client"
        grant = "device_code"
        """)  # fmt: skip
    refresh = signed["refresh_token"]
    keychain(env, f"set_password('tokend-oauth2', 'gateway', {refresh!r}); "
             "set_password('tokend-oauth2', 'third', 'rt-an-older-sign-in'); "
             "set_password('tokend-oauth2', 'elsewhere', 'rt-another-client')")  # fmt: skip
    daemon = sandbox.start_daemon(env=env)
    r = sandbox.print_("internal", env=env)
    assert r.status == 0 and audience(r.out.strip()) == API_B, r
    rotated = stored(env, provider.issuer)
    assert rotated not in (None, refresh), "moved to the identity's entry, then rotated there"
    left = {name: stored_as(env, name) for name in ("gateway", "third", "elsewhere")}
    assert left == {"gateway": None, "third": None, "elsewhere": "rt-another-client"}, left
    daemon.stop()
    assert refresh not in daemon.log_text()


def stored_as(env: Mapping[str, str], name: str) -> str | None:
    """The raw keychain entry an older tokend kept under profile ``name``."""
    done = subprocess.run(
        [TOKEND.replace("/tokend", "/python"), "-c",
         f"import keyring; print(keyring.get_password('tokend-oauth2', {name!r}) or '')"],
        env=dict(env), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip() or None
