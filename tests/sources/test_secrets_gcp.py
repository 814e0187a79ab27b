"""``gcp-secretmanager`` with real google-auth against FakeGoogle (tokens) and a Secret Manager fake."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.gcp_secretmanager import FakeSecretManager, fake_secret_manager
from tests.fakes.google import FakeGoogle, fake_google, routed
from tests.sources import brokered
from tests.sources.test_contract import SourceContract, toml_value
from tokend.core import config
from tokend.core.broker import Broker, build_source
from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, LoginRequired, SourceError, SourceTimeout, SourceUnavailable
from tokend.sources.base import BaseSource
from tokend.sources.google import GoogleSource
from tokend.sources.google.secretmanager import crc32c

SA = "reader@proj.iam.gserviceaccount.com"
GOOGLE_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST", "GCE_METADATA_IP")


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture
def sm(google: FakeGoogle) -> Iterator[FakeSecretManager]:
    yield from fake_secret_manager(google)


class World:
    def __init__(self, root: Path, google: FakeGoogle, sm: FakeSecretManager, mp: pytest.MonkeyPatch) -> None:
        self.root, self.google, self.sm = root, google, sm
        for var in GOOGLE_VARS:
            mp.delenv(var, raising=False)
        (root / "gcloud").mkdir()
        mp.setenv("CLOUDSDK_CONFIG", str(root / "gcloud"))
        mp.setenv("NO_GCE_CHECK", "true")
        mp.setenv("HOME", str(root))
        self.sa_file = self.write("sa.json", google.service_account(SA))

    def write(self, name: str, doc: dict[str, Any]) -> str:
        path = self.root / name
        path.write_text(json.dumps(doc))
        os.chmod(path, 0o600)
        return str(path)

    def config(self, secret: dict[str, Any], google: dict[str, Any] | None = None) -> config.Config:
        google = google if google is not None else {"credentials_file": self.sa_file}
        lines = ["[profiles.g]", 'source = "google"']
        lines += [f"{k} = {toml_value(v)}" for k, v in google.items()]
        lines += ["[profiles.s]", 'source = "gcp-secretmanager"', f'endpoint = "{self.sm.url}"']
        lines += [f"{k} = {toml_value(v)}" for k, v in secret.items()]
        return config.parse("\n".join(lines) + "\n", None)

    def source(self, clock: Any = time.time, **secret: Any) -> BaseSource:
        secret.setdefault("via", "g")
        return brokered.build(self.config(secret), "s", clock)


@pytest.fixture
def world(
    tmp_path: Path, google: FakeGoogle, sm: FakeSecretManager, monkeypatch: pytest.MonkeyPatch
) -> World:
    return World(tmp_path, google, sm, monkeypatch)


def fetch(src: BaseSource, timeout: float = 10.0) -> Credential:
    return brokered.fetch(src, timeout)


class TestGcpContract(SourceContract):
    source_name = "gcp-secretmanager"

    @pytest.fixture
    def options(self, world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", world.sa_file)  # ADC: no via
        world.sm.add_version("proj", "contract", "sk-contract-gcp")
        return {"name": "projects/proj/secrets/contract", "endpoint": world.sm.url}

    @pytest.fixture
    def unavailable_options(self, world: World) -> dict[str, Any]:
        return {"name": "projects/proj/secrets/contract", "endpoint": world.sm.url}  # no ADC at all


def test_access_with_the_google_profiles_token(world: World) -> None:
    world.sm.add_version("proj", "openai", json.dumps({"api_key": "sk-gcp-1"}))
    src = world.source(name="projects/proj/secrets/openai/versions/latest", json_key="api_key", ttl="20m")
    now = time.time()
    cred = fetch(src)
    assert (cred.kind, cred.primary, cred.source) == ("secret", "sk-gcp-1", "gcp-secretmanager")
    assert cred.refresh_at is not None and abs(cred.refresh_at - (now + 1200)) < 5
    (seen,) = world.sm.requests
    assert seen.path == "/v1/projects/proj/secrets/openai/versions/latest:access"
    assert seen.principal == SA and seen.authorization.startswith("Bearer ya29.fake-")
    fetch(src)  # the access token is kept in memory: one token grant for both reads
    assert world.google.grants() == ["jwt-bearer"] and len(world.sm.requests) == 2


def test_versions_latest_by_default_and_quota_project(world: World) -> None:
    world.sm.add_version("proj", "k", "one")
    world.sm.add_version("proj", "k", "two")
    cfg = world.config(
        {"name": "projects/proj/secrets/k", "via": "g"},
        {"credentials_file": world.sa_file, "quota_project": "billing-proj"},
    )
    assert fetch(brokered.build(cfg, "s")).primary == "two"
    assert world.sm.requests[-1].path.endswith("/secrets/k/versions/latest:access")
    assert world.sm.requests[-1].user_project == "billing-proj"
    assert fetch(world.source(name="projects/proj/secrets/k/versions/1")).primary == "one"


def test_not_found_denied_and_disabled(world: World) -> None:
    with pytest.raises(SourceError) as info:
        fetch(world.source(name="projects/proj/secrets/missing"))
    assert info.value.line() == "tokend: s: secret projects/proj/secrets/missing/versions/latest not found"
    assert not info.value.retryable
    world.sm.add_version("proj", "locked", "x")
    world.sm.allowed["proj/locked"] = {"someone-else@proj.iam.gserviceaccount.com"}
    with pytest.raises(
        SourceError, match="access denied reading secret projects/proj/secrets/locked"
    ) as info:
        fetch(world.source(name="projects/proj/secrets/locked"))
    assert "secretmanager.versions.access" in info.value.message and not info.value.retryable
    world.sm.add_version("proj", "off", "x")
    world.sm.disable("proj", "off", 1)
    with pytest.raises(SourceError, match=r"FAILED_PRECONDITION.*DISABLED") as info:
        fetch(world.source(name="projects/proj/secrets/off/versions/1"))
    assert not info.value.retryable


def test_rejected_token_is_minted_again_once(world: World) -> None:
    world.sm.add_version("proj", "k", "v")
    world.sm.fail(401, "UNAUTHENTICATED")
    assert fetch(world.source(name="projects/proj/secrets/k")).primary == "v"
    assert world.google.grants() == ["jwt-bearer", "jwt-bearer"]


def test_corrupted_payload_is_refused(world: World) -> None:
    world.sm.add_version("proj", "k", "v")
    world.sm.corrupt = True
    with pytest.raises(SourceError, match="CRC32C"):
        fetch(world.source(name="projects/proj/secrets/k"))
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def test_config_checks(world: World) -> None:
    with pytest.raises(ConfigError, match=r"profiles.s.via: no profile named 'nope'"):
        world.config({"name": "projects/p/secrets/s", "via": "nope"})
    with pytest.raises(
        ConfigError, match=r"profile 'g' has source 'demo'; expected a profile with source 'google'"
    ):
        config.parse(
            '[profiles.g]\nsource = "demo"\n[profiles.s]\nsource = "gcp-secretmanager"\n'
            'name = "projects/p/secrets/s"\nvia = "g"\n',
            None,
        )
    with pytest.raises(ConfigError, match="expected projects/PROJECT/secrets/SECRET"):
        world.source(name="secrets/s")


def test_the_google_profile_settings_reach_the_secret(world: World) -> None:
    """Changing the google profile changes the secret profile's fingerprint (reload drops its cache)."""
    one = world.config({"name": "projects/p/secrets/s", "via": "g"}).profile("s")
    two = world.config(
        {"name": "projects/p/secrets/s", "via": "g"},
        {"credentials_file": world.sa_file, "quota_project": "x"},
    ).profile("s")
    assert one.options["via"].name == "g" and one.fingerprint != two.fingerprint


def test_dead_sign_in_is_login_required_for_the_google_profile(world: World) -> None:
    user = world.google.authorized_user("alice@example.com")
    world.google.revoke(user["refresh_token"])
    cfg = world.config(
        {"name": "projects/proj/secrets/k", "via": "g"}, {"credentials_file": world.write("u.json", user)}
    )

    def factory(profile: config.Profile, clock: Any) -> BaseSource:
        if profile.source == "google":  # the token profile: its token endpoint is the fake's
            session = routed(world.google)
            return GoogleSource(profile.name, profile.options, clock=clock, session_factory=session)
        return build_source(profile, clock)

    src = brokered.build(cfg, "s", factory=factory)
    with pytest.raises(LoginRequired) as info:
        fetch(src)
    assert info.value.line().startswith("tokend: s: google profile 'g': Google refused the sign-in")
    assert "tokend login g" in info.value.message and info.value.exit_status == 4


def test_no_adc_is_unavailable(world: World) -> None:
    cfg = config.parse(
        f'[profiles.s]\nsource = "gcp-secretmanager"\nname = "projects/p/secrets/s"\n'
        f'endpoint = "{world.sm.url}"\n',
        None,
    )
    with pytest.raises(SourceUnavailable, match="no Google credentials"):
        fetch(brokered.build(cfg, "s"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["5xx", "hang"])
def test_cached_secret_served_while_secret_manager_fails(world: World, clock: FakeClock, fault: str) -> None:
    world.sm.add_version("proj", "k", "sk-cached-gcp")
    cfg = world.config({"name": "projects/proj/secrets/k", "via": "g", "ttl": "10m", "timeout": "1s"})
    broker = Broker(cfg, clock=clock)
    try:
        assert broker.get("s").primary == "sk-cached-gcp"
        world.sm.add_version("proj", "k", "sk-rotated-gcp")
        if fault == "5xx":
            world.sm.fail(503, "UNAVAILABLE", times=10)
        else:
            world.sm.hang()
        clock.advance(601)
        assert broker.get("s").primary == "sk-cached-gcp"
        row = _settle(broker, "s")
        assert row["failures"] == 1 and row["state"] == "stale"
        expected = "HTTP 503" if fault == "5xx" else "did not answer within 1s"
        assert expected in str(row["last_error"])
        world.sm.hang(False)
        world.sm._failures.clear()
        clock.advance(400)  # after the backoff: the rotated value
        broker.get("s")
        row = _settle(broker, "s")
        assert broker.get("s").primary == "sk-rotated-gcp" and row["rotations"] == 1
    finally:
        world.sm.hang(False)
        broker.close()


def test_timeout(world: World) -> None:
    world.sm.hang()
    start = time.monotonic()
    with pytest.raises(SourceTimeout):
        fetch(world.source(name="projects/proj/secrets/k"), timeout=1.0)
    assert time.monotonic() - start < 3
    world.sm.hang(False)


def _settle(broker: Broker, name: str) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        (row,) = [r for r in broker.status() if r["profile"] == name]
        if not row.get("refreshing"):
            return row
        assert time.monotonic() < deadline
        time.sleep(0.02)
