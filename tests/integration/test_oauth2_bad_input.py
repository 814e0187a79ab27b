"""What a user of kubelogin or oauth2l trips on, through real ``tokend`` processes and a real OpenID
provider (oidc-provider): a wrong client secret or an unreachable provider at ``tokend login``,
consent denied on the PKCE redirect, a provider whose clock is behind, and the ``audience`` of every
profile of the identity asked for at sign-in."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.oidc_provider import (
    RESOURCE,
    Provider,
    approve_browser,
    confidential,
    oidc_provider,
    public_native_client,
    refuse_browser,
)

from .conftest import TOKEND, Sandbox, SecretService
from .test_oauth2_login import PROMPT

SECRET = "s3cret-oauth2-device-0003"
DEVICE = ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token")


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    clients = [confidential("confdev", SECRET, grants=DEVICE), public_native_client("native")]
    with oidc_provider(clients) as p:
        yield p


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def login_with(
    env: Mapping[str, str], profile: str, person: Callable[[re.Match[str]], None]
) -> subprocess.CompletedProcess[str]:
    """``tokend login PROFILE --no-browser`` with ``person`` acting on the prompt it prints."""
    proc = subprocess.Popen(
        [TOKEND, "login", profile, "--no-browser", "--timeout", "90"],
        env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        found = PROMPT.match(first.strip())
        assert found and found.group(1) == profile, first
        person(found)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, first + err)


@pytest.mark.timeout(120)
def test_login_with_a_wrong_secret_or_no_provider_names_the_profile(
    sandbox: Sandbox, provider: Provider
) -> None:
    sandbox.write_config(f"""
        [profiles.gw]
        source = "oauth2"
        issuer = "{provider.issuer}"
        client_id = "confdev"
        client_secret = "env:GW_SECRET"
        client_auth = "client_secret_post"
        grant = "device_code"
        scopes = ["openid", "offline_access"]

        [profiles.gone]
        source = "oauth2"
        issuer = "http://127.0.0.1:{closed_port()}"
        client_id = "cli"
        grant = "device_code"
        """)  # fmt: skip
    r = sandbox.tokend("login", "gw", "--no-browser", env=sandbox.env(GW_SECRET=SECRET + "x"))
    assert (r.status, r.out) == (1, ""), r
    assert r.err_lines == [
        "tokend: gw: the provider refused client 'confdev': invalid_client (client authentication failed)"
    ], r
    assert SECRET not in r.err
    r = sandbox.tokend("login", "gone", "--no-browser")
    assert r.status == 1 and len(r.err_lines) == 1, r
    assert r.err.startswith("tokend: gone: OpenID discovery at http://127.0.0.1:"), r
    assert "ConnectionError" in r.err, r


@pytest.mark.timeout(180)
def test_consent_denied_on_the_pkce_redirect(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    sandbox.write_config(f"""
        [profiles.gw]
        source = "oauth2"
        issuer = "{provider.issuer}"
        client_id = "native"
        grant = "authorization_code"
        scopes = ["openid", "offline_access"]
        """)  # fmt: skip
    pages: list[str] = []
    done = login_with(secret_service.env, "gw", lambda found: pages.append(refuse_browser(found.group(2))))
    assert done.returncode == 2, done
    assert done.stderr.splitlines()[-1] == "tokend: gw: the sign-in was denied", done
    assert pages and "The sign-in did not complete." in pages[0]
    r = sandbox.print_("gw", env=secret_service.env)
    assert (r.status, r.err_lines) == (4, ["tokend: gw: not signed in; run: tokend login gw"]), r


@pytest.mark.timeout(180)
def test_one_sign_in_asks_for_every_audience_of_the_identity(
    sandbox: Sandbox, secret_service: SecretService, provider: Provider
) -> None:
    # Providers such as Auth0 name the API with audience= rather than resource=: the one sign-in
    # asks for the audience of each profile of the identity (oidc-provider ignores the parameter).
    sandbox.write_config("".join(f"""
        [profiles.{name}]
        source = "oauth2"
        issuer = "{provider.issuer}"
        client_id = "native"
        grant = "authorization_code"
        scopes = ["openid", "offline_access"]
        audience = "{audience}"
        """ for name, audience in (("gw", "https://api-a.example.test"), ("other", "https://api-b.example.test"))
    ))  # fmt: skip
    urls: list[str] = []

    def person(found: re.Match[str]) -> None:
        urls.append(found.group(2))
        assert "Signed in." in approve_browser(found.group(2))

    done = login_with(secret_service.env, "gw", person)
    assert done.returncode == 0, done
    query = parse_qs(urlsplit(urls[0]).query)
    assert query["audience"] == ["https://api-a.example.test", "https://api-b.example.test"], urls
    for name in ("gw", "other"):
        r = sandbox.tokend("get", "--no-daemon", name, env=secret_service.env)
        assert r.status == 0, r


@pytest.mark.timeout(120)
def test_a_provider_whose_clock_is_behind(sandbox: Sandbox) -> None:
    # Its token says expires_in = 600 but its exp passed an hour ago by this machine's clock (and by
    # any API's): refused with one line, not served.
    with oidc_provider([confidential("svc", SECRET)], clock_offset=-3600) as late:
        sandbox.write_config(f"""
            [profiles.gw]
            source = "oauth2"
            issuer = "{late.issuer}"
            client_id = "svc"
            client_secret = "env:GW_SECRET"
            scopes = ["ai.invoke"]
            resource = "{RESOURCE}"
            """)  # fmt: skip
        r = sandbox.tokend("get", "--no-daemon", "gw", env=sandbox.env(GW_SECRET=SECRET))
    assert (r.status, r.out) == (1, ""), r
    assert len(r.err_lines) == 1 and re.fullmatch(
        r"tokend: gw: the provider issued an access token that expired \d+s ago by this machine's clock "
        r"\(clock skew\?\)",
        r.err_lines[0],
    ), r
