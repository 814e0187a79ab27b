"""One prompt per identity: a herd meeting an expired SSO session, then one login serving everyone.

Real ``tokend serve``, ``tokend-print`` and ``tokend login`` processes; the SSO
portal and sso-oidc are the fake in tests/fakes/aws_sso.py. ``BROWSER``,
``xdg-open`` and friends are scripts that record every call, and so is
``notify-send``: the daemon must never open a browser, tell the person once,
and after one ``tokend login`` every caller of every profile of that SSO
session is served.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.aws_moto import LEAKY, aws_files
from tests.fakes.aws_sso import FakeSso, fake_sso, sso_config

from .conftest import TOKEND, TOKEND_PRINT, Result, Sandbox

TOML = """
[profiles.dev]
source = "aws"
aws_profile = "dev"

[profiles.prod]
source = "aws"
aws_profile = "prod"
"""

#: Everything that could open a browser or a notification, as recording scripts.
RECORDED = ("fake-browser", "xdg-open", "x-www-browser", "sensible-browser", "www-browser", "gio", "firefox")


@pytest.fixture
def sso() -> Iterator[FakeSso]:
    with fake_sso() as fake:
        yield fake


def recorder(bindir: Path, name: str, log: Path) -> None:
    script = bindir / name
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexit 0\n')
    script.chmod(0o755)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def setup_world(sandbox: Sandbox, sso: FakeSso) -> tuple[dict[str, str], Path, Path]:
    bindir = sandbox.root / "bin"
    bindir.mkdir()
    browsers, notes = sandbox.root / "browser.log", sandbox.root / "notify.log"
    for name in RECORDED:
        recorder(bindir, name, browsers)
    recorder(bindir, "notify-send", notes)
    env = {k: v for k, v in sandbox.env().items() if k not in LEAKY}
    env.update(
        aws_files(sandbox.root, sso_config("corp", ("dev", "prod"))),
        AWS_ENDPOINT_URL_SSO=sso.url,
        AWS_ENDPOINT_URL_SSO_OIDC=sso.url,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
        BROWSER=str(bindir / "fake-browser"),
        DISPLAY=":99",
        PATH=f"{bindir}:{env['PATH']}",
        TOKEND_TIMEOUT="20",
    )
    sandbox.write_config(TOML)
    return env, browsers, notes


def herd(sandbox: Sandbox, env: dict[str, str], n: int = 20) -> list[tuple[str, Result]]:
    profiles = ["dev" if i % 2 else "prod" for i in range(n)]
    argvs = [[TOKEND_PRINT, p, "--format", "aws-process"] for p in profiles]
    return list(zip(profiles, sandbox.run_many(argvs, env=env, timeout=90), strict=True))


@pytest.mark.timeout(90)
def test_expired_session_herd_then_one_login_serves_all(sandbox: Sandbox, sso: FakeSso) -> None:
    env, browsers, notes = setup_world(sandbox, sso)
    sso.write_cache(sandbox.home, session_name="corp", access_token=sso.session_token(), expires_in=-60)
    daemon = sandbox.start_daemon(env=env)

    for profile, r in herd(sandbox, env):
        assert r.status == 4, r
        assert r.out == ""
        assert r.err_lines == [
            f"tokend: {profile}: the AWS SSO session has expired or was never started; "
            f"run: tokend login {profile}"
        ]
    # The person is told once (dev and prod share the SSO session), by the daemon, without a browser.
    deadline = time.monotonic() + 5
    while not lines(notes) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    [note] = lines(notes)
    assert note.startswith("--app-name=tokend --icon=dialog-password tokend: sign-in needed ")
    assert "run: tokend login" in note
    assert lines(browsers) == []
    assert sso.calls["StartDeviceAuthorization"] == 0 and sso.calls["CreateToken"] == 0

    # Two people-at-keyboard logins at once for the same session: one device flow, one browser.
    logins = sandbox.run_many(
        [[TOKEND, "login", p, "--timeout", "60"] for p in ("dev", "prod")], env=env, timeout=90
    )
    assert [r.status for r in logins] == [0, 0], logins
    assert sso.calls["StartDeviceAuthorization"] == 1
    [opened] = lines(browsers)
    assert opened.startswith("https://device.sso.us-east-1.amazonaws.com/?user_code=")
    assert sum("signed in by a concurrent tokend login" in r.err for r in logins) == 1

    fetched_before = sso.calls["GetRoleCredentials"]
    served: dict[str, set[str]] = {"dev": set(), "prod": set()}
    for profile, r in herd(sandbox, env):
        assert r.status == 0, r
        served[profile].add(json.loads(r.out)["AccessKeyId"])
    assert all(len(keys) == 1 for keys in served.values()), served  # one fetch per profile, shared
    assert sso.calls["GetRoleCredentials"] - fetched_before == 2
    assert {*served["dev"], *served["prod"]} <= set(sso.issued_keys)
    assert lines(browsers) == [opened] and len(lines(notes)) == 1
    log = daemon.log_text()
    assert "desktop notification sent" in log
    assert not any(key in log for key in sso.issued_keys)
