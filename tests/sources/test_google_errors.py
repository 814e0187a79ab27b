"""How the google source fails: the next step to take, exit 4 for a dead sign-in, bounded time."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.google import FakeGoogle, fake_google
from tests.sources.google_helpers import TARGET_SA, World, fetch
from tokend.core.errors import (
    EXIT_FAILED,
    EXIT_LOGIN,
    LoginRequired,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
)
from tokend.sources.google import errors as google_errors

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture
def world(tmp_path: Path, google: FakeGoogle) -> World:
    return World(tmp_path, google)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- no credentials at all -----------------------------------------------------------


def test_no_adc_names_the_next_step(world: World) -> None:
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:
        fetch(world.source("vertex", env={"NO_GCE_CHECK": "true"}))
    assert time.monotonic() - started < 3
    line = err.value.line()
    assert err.value.exit_status == EXIT_FAILED
    assert line.startswith("tokend: vertex: no Google credentials")
    assert "run: tokend login vertex (or gcloud auth application-default login)" in line
    assert str(world.well_known) in line


def test_no_adc_and_no_metadata_server(world: World, google: FakeGoogle) -> None:
    google.stop()  # nothing listens where the metadata server would be
    with pytest.raises(SourceUnavailable, match="no metadata server answered within 3s"):
        fetch(world.source())


def test_a_missing_credentials_file_is_named(world: World) -> None:
    missing = str(world.root / "gone.json")
    with pytest.raises(SourceUnavailable) as err:
        fetch(world.source(credentials_file=missing))
    assert f"credentials_file names {missing}, which does not exist" in str(err.value)
    with pytest.raises(SourceUnavailable, match="GOOGLE_APPLICATION_CREDENTIALS names"):
        fetch(world.source(env={"GOOGLE_APPLICATION_CREDENTIALS": missing}))


@pytest.mark.parametrize(
    ("contents", "message"),
    [("{not json", "is not valid JSON"), ('{"hello": 1}', 'is not a Google credentials file (no "type")')],
)
def test_a_damaged_credentials_file(world: World, contents: str, message: str) -> None:
    path = world.root / "bad.json"
    path.write_text(contents)
    with pytest.raises(SourceError, match=re.escape(message)) as err:
        fetch(world.source(credentials_file=str(path)))
    assert err.value.retryable is False


def test_an_unknown_credentials_type(world: World) -> None:
    path = world.write("odd.json", {"type": "martian"})
    with pytest.raises(SourceError, match="unusable Google credentials") as err:
        fetch(world.source(credentials_file=path))
    assert err.value.retryable is False


def test_a_credentials_file_another_user_can_change_is_refused(world: World) -> None:
    """It picks the identity (an external_account file even names a command): ours or root's only."""
    path = Path(world.write("shared.json", {"type": "external_account", "credential_source": {}}))
    path.chmod(0o666)
    with pytest.raises(SourceError, match=r"credentials_file: refusing .*writable by group or others") as err:
        fetch(world.source(credentials_file=str(path)))
    assert err.value.retryable is False


# -- a sign-in that no longer works ----------------------------------------------------


def test_revoked_refresh_token_means_login_required(world: World, google: FakeGoogle) -> None:
    info = google.authorized_user()
    world.adc(info)
    google.revoke(info["refresh_token"])
    with pytest.raises(LoginRequired) as err:
        fetch(world.source("vertex"))
    assert err.value.exit_status == EXIT_LOGIN == 4
    line = err.value.line()
    assert "invalid_grant" in line and "run: tokend login vertex" in line
    assert info["refresh_token"] not in line


def test_revoked_sign_in_under_impersonation_means_login_required(world: World, google: FakeGoogle) -> None:
    info = google.authorized_user()
    world.adc(info)
    google.revoke(info["refresh_token"])
    with pytest.raises(LoginRequired):
        fetch(world.source(impersonate_service_account=TARGET_SA))
    world.adc(
        {
            "type": "impersonated_service_account",
            "service_account_impersonation_url": (
                f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{TARGET_SA}:generateAccessToken"
            ),
            "source_credentials": info,
        }
    )
    with pytest.raises(LoginRequired):
        fetch(world.source())


def test_invalid_grant_for_a_service_account_is_not_a_login(world: World, google: FakeGoogle) -> None:
    info = google.service_account()
    google.service_accounts.clear()  # key deleted on Google's side
    with pytest.raises(SourceError) as err:
        fetch(world.source(credentials_file=world.write("sa.json", info)))
    assert not isinstance(err.value, LoginRequired) and err.value.exit_status == EXIT_FAILED


# -- bounded time -------------------------------------------------------------------


def test_a_hanging_metadata_server_is_given_up_within_3s(world: World, google: FakeGoogle) -> None:
    google.hang("/", "/computeMetadata/")
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as err:
        fetch(world.source("vertex"), timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, elapsed  # the 3 s bound, with a loaded machine's margin
    assert "no metadata server answered within 3s" in str(err.value)
    assert "run: tokend login vertex" in str(err.value)


def test_a_hanging_token_endpoint_is_bounded_by_the_fetch_timeout(world: World, google: FakeGoogle) -> None:
    google.hang("/token")
    path = world.write("sa.json", google.service_account())
    started = time.monotonic()
    with pytest.raises(SourceTimeout) as err:
        fetch(world.source(credentials_file=path), timeout=1.5)
    assert time.monotonic() - started < 3.5
    assert "did not answer within 1.5s" in str(err.value)


def test_an_unreachable_token_endpoint_is_retryable(world: World, google: FakeGoogle) -> None:
    info = google.service_account()
    info["token_uri"] = f"http://127.0.0.1:{closed_port()}/token"
    with pytest.raises(SourceError) as err:
        fetch(world.source(credentials_file=world.write("sa.json", info)), timeout=3)
    assert err.value.retryable is True


# -- no secret in a message ------------------------------------------------------------


def test_messages_are_scrubbed_of_google_secrets() -> None:
    text = (
        "bad token ya29.a0AfH6SMB-secret.value, refresh 1//0gSecret-Refresh_token, "
        "jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl and more"
    )
    scrubbed = google_errors.scrub(text)
    for secret in ("ya29.a0AfH6SMB", "1//0gSecret", "eyJhbGciOiJSUzI1NiJ9"):
        assert secret not in scrubbed
    assert scrubbed.count("***") == 3


def test_an_error_body_echoing_a_token_is_scrubbed(world: World, google: FakeGoogle) -> None:
    from google.auth import exceptions

    body = json.dumps({"error": "invalid_request", "error_description": "token ya29.leaked-token was bad"})
    err = google_errors.map_error(
        exceptions.RefreshError("invalid_request: token ya29.leaked-token was bad", body),
        plan=world.source()._plan(),
        kind="service_account",
        user_based=False,
    )
    assert "ya29.leaked" not in err.line() and "***" in err.line()


# -- google-auth stays out of processes that do not use it --------------------------------


def test_google_auth_is_imported_only_by_a_google_fetch(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""\
        import sys
        from tokend.core import config
        from tokend.core.broker import build_source
        text = '[profiles.v]\\nsource = "google"\\ncredentials_file = "{tmp_path}/none.json"\\n'
        cfg = config.parse(text, None)
        source = build_source(cfg.profile("v"), lambda: 0.0)
        source.fingerprint()
        source.identity()
        assert not any(m == "google" or m.startswith(("google.", "requests")) for m in sys.modules), sorted(
            m for m in sys.modules if m.startswith(("google", "requests")))
        print("clean")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=Path.cwd()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
