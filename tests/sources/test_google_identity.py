"""Identity change: a new ADC file or gcloud account drops the cached token; never the old identity's."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.google import FakeGoogle, fake_google
from tests.sources.google_helpers import World, token
from tokend.core import config
from tokend.core.broker import Broker
from tokend.core.config import Profile
from tokend.sources.base import BaseSource
from tokend.sources.google import adc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture
def world(tmp_path: Path, google: FakeGoogle) -> World:
    return World(tmp_path, google)


def gcloud_account(world: World, account: str, config_name: str = "default") -> None:
    """What `gcloud config set account` / `configurations activate` leave on disk."""
    (world.gcloud_dir / "configurations").mkdir(exist_ok=True)
    (world.gcloud_dir / "configurations" / f"config_{config_name}").write_text(
        f"[core]\naccount = {account}\nproject = proj\n"
    )
    (world.gcloud_dir / "active_config").write_text(config_name)


# -- the stamp ------------------------------------------------------------------------


def test_stamp_follows_contents_not_timestamps(world: World, google: FakeGoogle) -> None:
    world.adc(google.authorized_user("alice@example.com"))
    stamp = adc.IdentityStamp(str(world.well_known), world.env)
    first = stamp.current()
    assert stamp.current() == first
    later = time.time() + 100
    os.utime(world.well_known, (later, later))  # touched, same contents
    assert stamp.current() == first
    world.adc(google.authorized_user("bob@example.com"))
    assert stamp.current() != first


def test_stamp_follows_gclouds_active_account_and_configuration(world: World, google: FakeGoogle) -> None:
    world.adc(google.authorized_user())
    gcloud_account(world, "alice@example.com")
    stamp = adc.IdentityStamp(str(world.well_known), world.env)
    alice = stamp.current()
    gcloud_account(world, "bob@example.com")  # gcloud config set account bob
    bob = stamp.current()
    assert bob != alice
    gcloud_account(world, "carol@example.com", config_name="work")  # configurations activate work
    assert stamp.current() not in (alice, bob)
    # CLOUDSDK_ACTIVE_CONFIG_NAME picks the configuration, whatever active_config says.
    pinned = adc.IdentityStamp(str(world.well_known), {**world.env, "CLOUDSDK_ACTIVE_CONFIG_NAME": "default"})
    before = pinned.current()
    gcloud_account(world, "dave@example.com", config_name="work")
    (world.gcloud_dir / "active_config").write_text("work")
    assert pinned.current() == before
    gcloud_account(world, "erin@example.com", config_name="default")
    (world.gcloud_dir / "active_config").write_text("work")
    assert pinned.current() != before


def test_stamp_notices_a_file_appearing_and_disappearing(world: World, google: FakeGoogle) -> None:
    stamp = adc.IdentityStamp(str(world.well_known), world.env)
    none = stamp.current()
    world.adc(google.authorized_user())
    assert stamp.current() != none
    world.well_known.unlink()
    assert stamp.current() == none


def test_stamp_reads_files_only_when_their_stat_changed(
    world: World, google: FakeGoogle, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.adc(google.authorized_user())
    gcloud_account(world, "alice@example.com")
    stamp = adc.IdentityStamp(str(world.well_known), world.env)
    stamp.current()
    reads: list[str] = []
    real = adc._read_bytes
    monkeypatch.setattr(adc, "_read_bytes", lambda p: reads.append(p) or real(p))
    started = time.perf_counter()
    for _ in range(1000):
        stamp.current()
    per_call = (time.perf_counter() - started) / 1000
    assert reads == []  # steady state: os.stat only
    assert per_call < 0.01, per_call  # µs expected; the figure belongs in benchmarks/
    world.adc(google.authorized_user("bob@example.com"))
    stamp.current()
    assert reads == [str(world.well_known)]


def test_adc_file_order(world: World) -> None:
    env = world.env
    assert adc.adc_file(None, env) == adc.AdcFile(str(world.well_known), "gcloud")
    assert adc.adc_file(None, {**env, "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}).origin == (
        "GOOGLE_APPLICATION_CREDENTIALS"
    )
    assert adc.adc_file(
        "~/k.json", {**env, "GOOGLE_APPLICATION_CREDENTIALS": "/x"}
    ).path == os.path.expanduser("~/k.json")


# -- through the broker -----------------------------------------------------------------


@pytest.fixture
def broker(world: World, google: FakeGoogle) -> Iterator[Callable[[], Broker]]:
    pinned = world.write("pinned.json", google.service_account("pinned@proj.iam.gserviceaccount.com"))
    cfg = config.parse(
        textwrap.dedent(
            f"""\
            [profiles.vertex]
            source = "google"

            [profiles.pinned]
            source = "google"
            credentials_file = "{pinned}"
            """
        ),
        None,
    )
    made: list[Broker] = []

    def factory(profile: Profile, clock: Callable[[], float]) -> BaseSource:
        return world.source(profile.name, clock=clock, **dict(profile.options))

    def make() -> Broker:
        b = Broker(cfg, source_factory=factory)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def principal(google: FakeGoogle, tok: str) -> str:
    issued = google.find(tok)
    assert issued is not None
    return issued.principal


def test_switching_adc_accounts_never_serves_the_previous_identitys_token(
    world: World, google: FakeGoogle, broker: Callable[[], Broker]
) -> None:
    b = broker()
    world.adc(google.authorized_user("alice@example.com"))
    alice = token(b.get("vertex"))
    assert token(b.get("vertex")) == alice  # cached
    assert principal(google, alice) == "alice@example.com"
    world.adc(google.authorized_user("bob@example.com"))  # gcloud auth application-default login as bob
    for _ in range(3):
        served = token(b.get("vertex"))
        assert principal(google, served) == "bob@example.com"
    assert len(google.tokens()) == 2


def test_gcloud_account_switch_refetches(
    world: World, google: FakeGoogle, broker: Callable[[], Broker]
) -> None:
    b = broker()
    world.adc(google.authorized_user("alice@example.com"))
    gcloud_account(world, "alice@example.com")
    first = token(b.get("vertex"))
    gcloud_account(world, "bob@example.com")
    second = token(b.get("vertex"))
    assert second != first and len(google.tokens()) == 2


def test_profiles_reading_another_file_keep_their_tokens(
    world: World, google: FakeGoogle, broker: Callable[[], Broker]
) -> None:
    b = broker()
    world.adc(google.authorized_user("alice@example.com"))
    pinned = token(b.get("pinned"))
    b.get("vertex")
    world.adc(google.authorized_user("bob@example.com"))
    assert token(b.get("pinned")) == pinned  # its own key file did not change
    assert principal(google, token(b.get("vertex"))) == "bob@example.com"
