"""The oauth2 source's rules that need no provider: validation, expiry, the missing-extra line."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.oidc_provider import RESOURCE, Provider, confidential, oidc_provider
from tests.sources.test_contract import SourceContract
from tests.sources.test_missing_extra import BLOCKER, ROOT
from tokend.core.errors import ConfigError, SourceError
from tokend.sources.oauth2 import OAuth2Source
from tokend.sources.oauth2.discovery import insecure_reason
from tokend.sources.oauth2.grants import credential, jwt_exp
from tokend.sources.oauth2.store import RefreshStore, Stored, identity_of, key_of

NOW = 1_800_000_000.0
SECRET = "s3cret-oauth2-contract"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider([confidential("contract", SECRET)]) as p:
        yield p


class TestOAuth2Contract(SourceContract):
    source_name = "oauth2"

    @pytest.fixture
    def options(self, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("TD_OAUTH2_SECRET", SECRET)
        return {
            "issuer": provider.issuer,
            "client_id": "contract",
            "client_secret": "env:TD_OAUTH2_SECRET",
            "scopes": ["ai.invoke"],
            "resource": RESOURCE,
        }

    @pytest.fixture
    def unavailable_options(self, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.delenv("TD_OAUTH2_UNSET", raising=False)
        return {"issuer": provider.issuer, "client_id": "contract", "client_secret": "env:TD_OAUTH2_UNSET"}


def jwt(**claims: Any) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def options(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "issuer": "https://login.example.com/realms/ai",
        "client_id": "tokend",
        "client_secret": "env:GATEWAY_SECRET",
        "client_auth": "client_secret_basic",
        "grant": "client_credentials",
        "scopes": [],
        "token": "access",
        "ttl": 3600.0,
    }
    base.update(kw)
    return base


def test_expiry_from_expires_in_then_the_jwts_exp_then_ttl() -> None:
    token = jwt(exp=NOW + 900)
    assert credential(
        {"access_token": token, "expires_in": 300}, which="access", now=NOW, ttl=60
    ).expires_at == (NOW + 300)
    assert credential({"access_token": token}, which="access", now=NOW, ttl=60).expires_at == NOW + 900
    assert credential({"access_token": "opaque"}, which="access", now=NOW, ttl=60).expires_at == NOW + 60
    # An ID token lives until its own exp, whatever expires_in says of the access token.
    answer = {"access_token": "opaque", "expires_in": 300, "id_token": jwt(exp=NOW + 1200)}
    id_cred = credential(answer, which="id", now=NOW, ttl=60)
    assert (id_cred.fields["token"], id_cred.expires_at) == (answer["id_token"], NOW + 1200)


def test_a_token_already_expired_by_clock_skew_is_refused() -> None:
    with pytest.raises(SourceError, match=r"expired 30s ago by this machine's clock"):
        credential({"access_token": jwt(exp=NOW - 30)}, which="access", now=NOW, ttl=60)


def test_no_id_token_names_the_scope_to_ask_for() -> None:
    with pytest.raises(SourceError, match=r'no id_token \(ask for scope "openid"'):
        credential({"access_token": "opaque"}, which="id", now=NOW, ttl=60)


@pytest.mark.parametrize(
    "token", ["opaque", "a.b.c", f"x.{base64.b64encode(b'[1]').decode()}.y", jwt(exp="soon")]
)
def test_jwt_exp_of_anything_else_is_none(token: str) -> None:
    assert jwt_exp(token) is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://login.example.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://[::1]:8080", True),
        ("http://localhost:8080", True),
        ("http://login.example.com", False),
        ("http://10.0.0.1", False),
        ("ftp://login.example.com", False),
        ("login.example.com", False),
    ],
)
def test_only_https_or_loopback_http(url: str, ok: bool) -> None:
    assert (insecure_reason(url) is None) == ok


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"issuer": None}, "profiles.gw: oauth2 needs issuer"),
        ({"issuer": "http://login.example.com"}, "profiles.gw.issuer: plain http only to a loopback"),
        ({"token_endpoint": "http://idp.example.com/token"}, "profiles.gw.token_endpoint: plain http"),
        (
            {"client_secret": "hunter2"},
            "profiles.gw.client_secret: expected env:VAR",
        ),
        ({"client_secret": None}, "profiles.gw.client_secret: required by the client_credentials grant"),
        ({"token": "id"}, "profiles.gw.token: the client_credentials grant issues no ID token"),
        (
            {"grant": "device_code", "issuer": None, "token_endpoint": "https://idp.example.com/token"},
            "profiles.gw.device_authorization_endpoint: required by grant = 'device_code' without an issuer",
        ),
        (
            {"grant": "authorization_code", "issuer": None, "token_endpoint": "https://idp.example.com/t"},
            "profiles.gw.authorization_endpoint: required by grant = 'authorization_code' without an issuer",
        ),
        ({"grant": "token_exchange"}, "profiles.gw.subject: required by grant = 'token_exchange'"),
        ({"grant": "jwt_bearer"}, "profiles.gw.subject: required by grant = 'jwt_bearer'"),
        (
            {"client_auth": "private_key_jwt"},
            "profiles.gw.client_key: needed with client_auth = 'private_key_jwt'",
        ),
        (
            {"client_key": "file:/k.pem"},
            "profiles.gw.client_key: needed with client_auth = 'private_key_jwt'",
        ),
        (
            {"client_key": "-----BEGIN", "client_auth": "private_key_jwt"},
            "profiles.gw.client_key: expected env:VAR",
        ),
        (
            {"client_key": "file:/k.pem", "client_auth": "private_key_jwt"},
            "profiles.gw.client_secret: a private_key_jwt client has a client_key, no secret",
        ),
        ({"subject": object()}, "profiles.gw.subject: only for grant = 'token_exchange' or 'jwt_bearer'"),
        ({"grant": "refresh_token"}, "profiles.gw.refresh_token: needed with grant = 'refresh_token'"),
        ({"refresh_token": "env:RT"}, "profiles.gw.refresh_token: needed with grant = 'refresh_token'"),
        (
            {"grant": "refresh_token", "refresh_token": "rt-literal-123"},
            "profiles.gw.refresh_token: expected env:VARIABLE, file:PATH or keyring:",
        ),
    ],
)
def test_validate_refuses(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OAuth2Source.validate("gw", options(**kw))
    assert str(caught.value.message).startswith(message), caught.value.message


def test_validate_accepts_explicit_endpoints_without_an_issuer() -> None:
    OAuth2Source.validate("gw", options(issuer=None, token_endpoint="https://idp.example.com/token"))


@pytest.mark.timeout(120)
def test_without_authlib_one_line_names_the_extra(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.gw]\nsource = "oauth2"\ntoken_endpoint = "https://idp.example.com/token"\n'
        'client_id = "c"\nclient_secret = "env:X"\n'
    )
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_RUNTIME_DIR": str(run),
        "TOKEND_CONFIG": str(config),
        "PYTHONPATH": f"{site}:{ROOT}",
        "TD_TEST_BLOCK": "authlib",
        "X": "secret-never-sent",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tokend", "get", "--no-daemon", "gw"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "tokend: profile 'gw' needs the oauth2 extra: pipx install 'tokend[oauth2]'\n"


def test_in_ci_the_refresh_token_stays_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring

    def no_keychain(*args: object) -> None:
        raise AssertionError("CI=true: the keychain must not be touched")

    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(keyring, "get_keyring", no_keychain)
    store, other = RefreshStore("gw-memory"), RefreshStore("other-memory")
    assert store.get() is None
    store.put("rt-1")
    store.put("rt-2")  # a rotated token replaces the stored one
    assert (store.get(), other.get()) == (Stored("rt-2"), None)
    store.forget()
    assert store.get() is None


class MemoryKeyring:
    """A keyring backend in a dict, standing in for a real keychain (the integration tests use
    gnome-keyring)."""

    priority = 1

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, user: str) -> str | None:
        return self.entries.get((service, user))

    def set_password(self, service: str, user: str, value: str) -> None:
        self.entries[(service, user)] = value

    def delete_password(self, service: str, user: str) -> None:
        import keyring.errors

        if self.entries.pop((service, user), None) is None:
            raise keyring.errors.PasswordDeleteError(user)


def test_one_entry_per_identity_and_the_old_per_profile_entry_moves_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import keyring

    backend = MemoryKeyring()
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    for name in ("get_password", "set_password", "delete_password"):
        monkeypatch.setattr(keyring, name, getattr(backend, name))
    a = identity_of({"issuer": "https://idp.example.com/", "client_id": "cli"})
    assert a == identity_of({"issuer": "https://idp.example.com", "client_id": "cli", "resource": "x"})
    assert a != identity_of({"issuer": "https://idp.example.com", "client_id": "other"})
    assert key_of(a).startswith("identity-") and "idp" not in key_of(a)

    backend.entries[("tokend-oauth2", "gateway")] = "rt-stored-by-profile"  # an older tokend's entry
    gateway, internal = RefreshStore(a, legacy="gateway"), RefreshStore(a, legacy="internal")
    assert internal.get() is None  # another profile's old entry is not its own
    assert gateway.get() == Stored("rt-stored-by-profile")
    assert ("tokend-oauth2", "gateway") not in backend.entries, "moved, not copied"
    assert internal.get() == Stored("rt-stored-by-profile"), "the identity's entry serves both profiles"
    assert gateway.lock is internal.lock
    internal.put("rt-rotated", origin="f1")
    assert gateway.get() == Stored("rt-rotated", "f1")
    gateway.forget()
    assert backend.entries == {}


def memory_keychain(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    import keyring

    backend = MemoryKeyring()
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    for name in ("get_password", "set_password", "delete_password"):
        monkeypatch.setattr(keyring, name, getattr(backend, name))
    return backend


IDENTITY_CONFIG = """
[profiles.gateway]
source = "oauth2"
issuer = "https://idp.example.com"
client_id = "cli"
grant = "device_code"
scopes = ["openid", "offline_access"]
resource = "https://a.example.com"
audience = "api-a"

[profiles.internal]
source = "oauth2"
issuer = "https://idp.example.com/"
client_id = "cli"
grant = "authorization_code"
scopes = ["offline_access", "b.read"]
resource = "https://b.example.com"
audience = "api-b"

[profiles.third]
source = "oauth2"
issuer = "https://idp.example.com"
client_id = "cli"
grant = "device_code"
audience = "api-a"

[profiles.service]
source = "oauth2"
issuer = "https://idp.example.com"
client_id = "cli"
client_secret = "env:X"
audience = "api-service"

[profiles.elsewhere]
source = "oauth2"
issuer = "https://idp.example.com"
client_id = "other"
grant = "device_code"
audience = "api-other"
"""


def test_a_sibling_asked_first_moves_the_identity_s_old_entry_and_drops_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tokend.core import config

    backend = memory_keychain(monkeypatch)
    path = tmp_path / "config.toml"
    path.write_text(IDENTITY_CONFIG)
    path.chmod(0o600)
    monkeypatch.setenv("TOKEND_CONFIG", str(path))
    profiles = config.load().profiles
    old = {"gateway": "rt-gateway", "third": "rt-third-older", "elsewhere": "rt-other-identity"}
    for name, token in old.items():  # as an older tokend left them: one entry per profile
        backend.entries[("tokend-oauth2", name)] = token
    internal = OAuth2Source("internal", profiles["internal"].options, clock=lambda: NOW)
    assert internal.store.get() == Stored("rt-gateway"), "the sign-in exists: a sibling's entry"
    assert backend.entries == {
        ("tokend-oauth2", internal.store.key): json.dumps({"refresh_token": "rt-gateway", "origin": None}),
        ("tokend-oauth2", "elsewhere"): "rt-other-identity",  # another client's sign-in is left alone
    }
    third = OAuth2Source("third", profiles["third"].options, clock=lambda: NOW)
    assert third.store.get() == Stored("rt-gateway")
    backend.entries[("tokend-oauth2", "gateway")] = "rt-left-by-a-downgrade"
    third.logout()  # forgets the identity wherever an old or new tokend kept it
    assert list(backend.entries) == [("tokend-oauth2", "elsewhere")]


def test_login_asks_for_the_scopes_resources_and_audiences_of_every_sibling(tmp_path: Path) -> None:
    from tokend.core import config
    from tokend.sources.oauth2.siblings import login_target

    profiles = config.parse(IDENTITY_CONFIG, tmp_path / "config.toml").profiles
    gateway = OAuth2Source("gateway", profiles["gateway"].options, clock=lambda: NOW)
    target = login_target("gateway", gateway.identity(), gateway.target(), profiles)
    assert target == {
        "scope": "openid offline_access b.read",
        "resource": ["https://a.example.com", "https://b.example.com"],
        "audience": ["api-a", "api-b"],  # not the client_credentials profile's, nor another client's
    }
    third = OAuth2Source("third", profiles["third"].options, clock=lambda: NOW)
    alone = {"elsewhere": profiles["elsewhere"], "third": profiles["third"]}
    assert login_target("third", third.identity(), third.target(), alone) == {
        "scope": None, "resource": None, "audience": "api-a"
    }  # fmt: skip


def test_a_token_whose_exp_is_past_is_refused_whatever_expires_in_says() -> None:
    # A provider whose clock is behind ours sends expires_in from its own now: its exp rules.
    with pytest.raises(SourceError, match=r"expired 30s ago by this machine's clock"):
        credential({"access_token": jwt(exp=NOW - 30), "expires_in": 600}, which="access", now=NOW, ttl=60)
    soon = {"access_token": jwt(exp=NOW + 100), "expires_in": 600}
    assert credential(soon, which="access", now=NOW, ttl=60).expires_at == NOW + 100
