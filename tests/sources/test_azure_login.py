# ruff: noqa: F811 (pytest fixtures imported from tests.fakes.azure_env are parameters here)
"""Laptop sign-in for azure profiles: device code, the persistent MSAL cache, silent refresh.

The test plays the person: it reads the code ``tokend login`` shows and enters
it at the fake authority's verification page.
"""

from __future__ import annotations

import importlib.util
import json
import re
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakes.azure_env import AzureEnv, azure_env, entra, test_ca  # noqa: F401
from tests.fakes.entra import USERNAME, FakeEntra
from tests.sources.test_contract import profile_toml
from tokend.core import config
from tokend.core.broker import build_source
from tokend.core.errors import EXIT_LOGIN, LoginRequired, SourceError
from tokend.sources.azure import AzureSource
from tokend.sources.azure import login as azure_login
from tokend.sources.base import FetchRequest, LoginContext

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def make(options: dict[str, Any]) -> AzureSource:
    profile = config.parse(profile_toml("azure", options), None).profile("contract")
    source = build_source(profile, time.time)
    assert isinstance(source, AzureSource)
    return source


@pytest.fixture
def options(azure_env: AzureEnv, entra: FakeEntra) -> dict[str, Any]:
    return {
        "credential": "device-code",
        "tenant_id": entra.tenant,
        "authority": entra.url,
        "disable_instance_discovery": True,
        "allow_unencrypted_cache": True,  # no libsecret in the test venv
    }


class Person:
    """Reads what ``login`` echoes and enters the code at the fake's verification page."""

    def __init__(self, ca_path: str, *, enter_code: bool = True) -> None:
        self.ca_path = ca_path
        self.enter_code = enter_code
        self.lines: list[str] = []
        self.entered: list[str] = []
        self._seen = threading.Event()

    def echo(self, line: str) -> None:
        self.lines.append(line)
        match = re.search(r"open (https://\S+) and enter the code (\w+)", line)
        if match and self.enter_code:
            threading.Thread(target=self._enter, args=match.groups(), daemon=True).start()

    def _enter(self, uri: str, code: str) -> None:
        time.sleep(0.2)  # the person types the code while login polls
        answer = requests.post(uri, data={"code": code}, verify=self.ca_path, timeout=10)
        assert answer.status_code == 200
        self.entered.append(code)


def login(source: AzureSource, env: AzureEnv, *, timeout: float = 30.0, enter_code: bool = True) -> Person:
    person = Person(str(env.ca.ca_path), enter_code=enter_code)
    source.login(LoginContext(profile="contract", echo=person.echo, open_browser=False, timeout=timeout))
    return person


@pytest.fixture
def signed_in(options: dict[str, Any], azure_env: AzureEnv, entra: FakeEntra) -> Iterator[Person]:
    yield login(make(options), azure_env)


def fetch(source: AzureSource, *, forced: bool = False) -> str:
    return source.fetch(FetchRequest(profile="contract", timeout=10.0, forced=forced)).fields["token"]


def test_device_code_login_stores_the_record(
    options: dict[str, Any], azure_env: AzureEnv, entra: FakeEntra
) -> None:
    person = login(make(options), azure_env)
    assert person.entered and any(f"signed in as {USERNAME}" in line for line in person.lines)
    record = azure_login.record_path("contract")
    assert record == azure_env.config_home / "tokend" / "azure" / "contract.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    doc = json.loads(record.read_text())
    assert doc["username"] == USERNAME and doc["tenantId"] == entra.tenant
    assert not any(token in record.read_text() for token in entra.issued)  # who, never a token
    assert entra.grant_count(DEVICE_GRANT) == 1
    # The opt-in plain cache is private to the user, and the person was told.
    cache = azure_env.home / ".IdentityService" / "tokend.contract.nocae"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert any("not encrypted" in line for line in person.lines)


def test_silent_afterwards_in_a_fresh_source(
    options: dict[str, Any], signed_in: Person, entra: FakeEntra
) -> None:
    flows = len(entra.flows)
    daemon = make(options)  # as a daemon started after the login builds it
    first = fetch(daemon)
    assert first == entra.issued[0]  # the token cached at sign-in, no upstream call
    assert entra.grant_count("refresh_token") == 0
    # The broker asks again (refresh time): the same token must not come back.
    second = fetch(daemon)
    assert second != first and second in entra.issued
    assert entra.grant_count("refresh_token") == 1
    forced = fetch(daemon, forced=True)
    assert forced not in (first, second)
    assert entra.grant_count("refresh_token") == 2
    assert len(entra.flows) == flows  # never another device code: nobody is prompted


def test_short_lived_cached_token_is_refreshed_at_once(
    options: dict[str, Any], azure_env: AzureEnv, entra: FakeEntra
) -> None:
    entra.expires_in = 600  # under azure_login.MIN_FRESH
    login(make(options), azure_env)
    assert fetch(make(options)) != entra.issued[0]
    assert entra.grant_count("refresh_token") == 1


def test_refresh_on_from_entra(options: dict[str, Any], azure_env: AzureEnv, entra: FakeEntra) -> None:
    entra.expires_in, entra.refresh_in = 5400, 2700
    login(make(options), azure_env)
    now = time.time()
    cred = make(options).fetch(FetchRequest(profile="contract", timeout=10.0))
    assert cred.refresh_at is not None and now + 2600 < cred.refresh_at < now + 2710


def test_not_signed_in_is_login_required_and_prompts_nobody(
    options: dict[str, Any], entra: FakeEntra
) -> None:
    with pytest.raises(LoginRequired) as info:
        fetch(make(options))
    assert info.value.exit_status == EXIT_LOGIN
    assert info.value.line() == "tokend: contract: not signed in; run: tokend login contract"
    assert entra.flows == {} and entra.grants == []


def test_revoked_sign_in_is_login_required(
    options: dict[str, Any], signed_in: Person, entra: FakeEntra
) -> None:
    entra.revoke_refresh_tokens()
    source = make(options)
    with pytest.raises(LoginRequired) as info:
        fetch(source, forced=True)
    assert "AADSTS70043" in info.value.message and "tokend login contract" in info.value.message
    assert len(entra.flows) == 1  # only the login's


def test_logout_forgets_the_sign_in(options: dict[str, Any], signed_in: Person, azure_env: AzureEnv) -> None:
    source = make(options)
    fetch(source)
    signed_in_print = source.fingerprint()
    source.logout()
    assert not azure_login.record_path("contract").exists()
    assert not (azure_env.home / ".IdentityService" / "tokend.contract.nocae").exists()
    assert source.fingerprint() != signed_in_print
    with pytest.raises(LoginRequired):
        fetch(make(options))
    source.logout()  # signed out already: nothing to do


def test_login_changes_the_fingerprint(options: dict[str, Any], azure_env: AzureEnv) -> None:
    source = make(options)
    before = source.fingerprint()
    login(source, azure_env)
    assert source.fingerprint() != before


def test_nobody_enters_the_code(options: dict[str, Any], azure_env: AzureEnv) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"(?i)timed out"):
        login(make(options), azure_env, timeout=2, enter_code=False)
    assert time.monotonic() - start < 6
    assert not azure_login.record_path("contract").exists()


def test_damaged_record(options: dict[str, Any], azure_env: AzureEnv) -> None:
    path = azure_login.record_path("contract")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(LoginRequired, match="damaged"):
        fetch(make(options))


@pytest.mark.skipif(importlib.util.find_spec("gi") is not None, reason="libsecret bindings present")
def test_unencrypted_cache_needs_the_opt_in(options: dict[str, Any], azure_env: AzureEnv) -> None:
    with pytest.raises(SourceError) as info:
        login(make({**options, "allow_unencrypted_cache": False}), azure_env)
    assert "allow_unencrypted_cache = true" in info.value.message
    assert not info.value.retryable
    assert not (azure_env.home / ".IdentityService" / "tokend.contract.nocae").exists()


def test_a_failed_refresh_that_no_person_can_fix_is_not_login_required(
    options: dict[str, Any], signed_in: Person, entra: FakeEntra
) -> None:
    entra.fail_next(400, "invalid_request", "AADSTS90014: The required field 'scope' is missing.")
    with pytest.raises(SourceError) as info:
        fetch(make(options), forced=True)
    assert not isinstance(info.value, LoginRequired)
    assert "AADSTS90014" in info.value.message and info.value.retryable
    assert fetch(make(options), forced=True) in entra.issued  # the next try works
