"""``tokend login`` for google profiles: gcloud when present, else tokend's own loopback flow."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.google import FakeGoogle, fake_google
from tests.sources.google_helpers import World, fetch, token
from tokend.core.errors import SourceError, UsageError
from tokend.sources.base import LoginContext
from tokend.sources.google import GoogleSource

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAKE_GCLOUD = """\
#!{python}
# Stands in for `gcloud auth application-default login`: logs its argv, writes the ADC file.
import json, os, shutil, sys
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
status = int(os.environ.get("FAKE_GCLOUD_EXIT", "0"))
if status == 0:
    shutil.copy(os.environ["FAKE_ADC_SOURCE"],
                os.path.join(os.environ["CLOUDSDK_CONFIG"], "application_default_credentials.json"))
sys.exit(status)
"""


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture
def world(tmp_path: Path, google: FakeGoogle) -> World:
    return World(tmp_path, google)


class Person:
    """Collects what login tells the person; follows a sign-in URL like a browser that approves."""

    def __init__(self, *, reads_urls: bool = True) -> None:
        self.lines: list[str] = []
        self.visits: list[threading.Thread] = []
        self.reads_urls = reads_urls  # False: only the "browser" (open_url) visits

    def echo(self, message: str) -> None:
        self.lines.append(message)
        found = re.search(r"http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+", message)
        if found and self.reads_urls:
            self.visit(found.group(0))

    def visit(self, url: str) -> None:
        def go() -> None:
            session = requests.Session()
            session.trust_env = False
            session.get(url, timeout=10)  # the consent screen redirects back to the loopback server

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        self.visits.append(thread)

    def ctx(self, profile: str = "vertex", *, browser: bool = False, timeout: float = 10) -> LoginContext:
        return LoginContext(profile=profile, echo=self.echo, open_browser=browser, timeout=timeout)


def gcloud_source(world: World, google: FakeGoogle, *, exit: int = 0, **options: object) -> GoogleSource:
    (world.root / "bin").mkdir()
    script = world.root / "bin" / "gcloud"
    script.write_text(FAKE_GCLOUD.format(python=sys.executable))
    script.chmod(0o755)
    adc_source = world.write("prepared-adc.json", google.authorized_user("alice@example.com"))
    source = world.source(
        "vertex",
        env={
            "FAKE_GCLOUD_LOG": str(world.root / "gcloud.log"),
            "FAKE_ADC_SOURCE": adc_source,
            "FAKE_GCLOUD_EXIT": str(exit),
        },
        **options,
    )
    source._find_gcloud = lambda: str(script)
    return source


def gcloud_calls(world: World) -> list[list[str]]:
    return [json.loads(line) for line in (world.root / "gcloud.log").read_text().splitlines()]


def test_login_delegates_to_gcloud_without_a_browser(world: World, google: FakeGoogle) -> None:
    source = gcloud_source(world, google)
    source.login(Person().ctx(browser=False))
    assert gcloud_calls(world) == [["auth", "application-default", "login", "--no-launch-browser"]]
    issued = google.find(token(fetch(source)))
    assert issued is not None and issued.principal == "alice@example.com"


def test_login_passes_the_profiles_scopes_and_client_to_gcloud(world: World, google: FakeGoogle) -> None:
    client = world.write("client.json", google.oauth_client())
    source = gcloud_source(
        world,
        google,
        scopes=("https://www.googleapis.com/auth/cloud-platform.read-only",),
        oauth_client_file=client,
    )
    source.login(Person().ctx(browser=True))
    assert gcloud_calls(world) == [
        [
            "auth",
            "application-default",
            "login",
            "--scopes=openid,https://www.googleapis.com/auth/userinfo.email,"
            "https://www.googleapis.com/auth/cloud-platform.read-only",
            f"--client-id-file={client}",
        ]
    ]


def test_a_failed_gcloud_login_is_an_error(world: World, google: FakeGoogle) -> None:
    with pytest.raises(SourceError, match="gcloud auth application-default login failed"):
        gcloud_source(world, google, exit=1).login(Person().ctx())


def test_without_gcloud_an_oauth_client_is_needed(world: World) -> None:
    with pytest.raises(UsageError, match=r"gcloud is not on PATH.*oauth_client_file"):
        world.source("vertex").login(Person().ctx())


@pytest.mark.parametrize("browser", [False, True])
def test_loopback_flow_writes_an_authorized_user_adc(world: World, google: FakeGoogle, browser: bool) -> None:
    person = Person(reads_urls=not browser)
    source = world.source(
        "vertex", oauth_client_file=world.write("client.json", google.oauth_client()), quota_project="billing"
    )
    source._open_url = person.visit  # the "browser"
    source.login(person.ctx(browser=browser))
    info = json.loads(world.well_known.read_text())
    assert info["type"] == "authorized_user" and info["refresh_token"].startswith("1//fake-refresh-")
    assert info["client_id"] == "fake-desktop.apps.googleusercontent.com"
    assert info["quota_project_id"] == "billing"
    assert stat.S_IMODE(os.stat(world.well_known).st_mode) == 0o600
    assert any("sign in with Google" in line for line in person.lines)
    assert not any(info["refresh_token"] in line for line in person.lines)  # never shown
    issued = google.find(token(fetch(source)))  # the new sign-in works at once
    assert issued is not None and issued.principal == "signed-in@example.com"


def test_loopback_flow_rejects_a_forged_redirect(world: World, google: FakeGoogle) -> None:
    class Forger(Person):
        def echo(self, message: str) -> None:
            found = re.search(r"redirect_uri=([^&\s]+)", message)
            assert found
            redirect = requests.utils.unquote(found.group(1))
            self.visit_raw(f"{redirect}?code=stolen&state=not-the-state")

        def visit_raw(self, url: str) -> None:
            threading.Thread(target=lambda: requests.get(url, timeout=10), daemon=True).start()

    source = world.source("vertex", oauth_client_file=world.write("client.json", google.oauth_client()))
    with pytest.raises(SourceError, match="wrong state"):
        source.login(Forger().ctx())
    assert not world.well_known.exists()


def test_loopback_flow_gives_up_at_its_deadline(world: World, google: FakeGoogle) -> None:
    source = world.source("vertex", oauth_client_file=world.write("client.json", google.oauth_client()))
    with pytest.raises(SourceError, match=r"no sign-in within 0\.5s"):
        source.login(LoginContext(profile="vertex", echo=lambda m: None, open_browser=False, timeout=0.5))


def test_a_service_account_key_needs_no_sign_in(world: World, google: FakeGoogle) -> None:
    path = world.write("sa.json", google.service_account())
    source = gcloud_source(world, google, credentials_file=path)
    with pytest.raises(UsageError, match="holds service_account credentials, which need no sign-in"):
        source.login(Person().ctx())
    with pytest.raises(UsageError):
        source.logout()
    assert Path(path).exists()


def test_logout_forgets_the_sign_in(world: World, google: FakeGoogle) -> None:
    world.adc(google.authorized_user())
    source = world.source("vertex")
    source.logout()
    assert not world.well_known.exists()
    source.logout()  # nothing left: still fine


def test_profiles_reading_one_adc_file_share_one_sign_in(world: World, tmp_path: Path) -> None:
    a, b = world.source("a"), world.source("b", scopes=("https://www.googleapis.com/auth/drive",))
    other = world.source("c", credentials_file=str(tmp_path / "k.json"))
    assert a.identity() == b.identity() != other.identity()


def test_loopback_client_file_must_be_a_desktop_client(world: World) -> None:
    bad = world.write("web.json", {"web": {"client_id": "x"}})
    with pytest.raises(UsageError, match="Desktop-app client JSON"):
        world.source("vertex", oauth_client_file=bad).login(Person().ctx())


def test_fake_gcloud_script_is_well_formed() -> None:
    # The fixture's stand-in must stay valid Python.
    compile(textwrap.dedent(FAKE_GCLOUD.format(python=sys.executable)), "gcloud", "exec")
