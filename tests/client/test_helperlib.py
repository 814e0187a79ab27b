"""What the git and docker helpers share: the config's [hosts] read without tokend.core.config, and logins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tokend.client import helperlib, hosts, paths
from tokend.core import config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("TOKEND_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "settings",
    [{}, {"XDG_CONFIG_HOME": "/x/conf"}, {"TOKEND_CONFIG": "~/t.toml"}, {"TOKEND_CONFIG": "/a/b.toml"}],
)
def test_config_path_is_the_one_tokend_reads(
    env: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]
) -> None:
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    assert paths.config_path() == str(config.default_path())


def write(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_routes_and_errors(env: Path) -> None:
    good = write(env / "c.toml", '[profiles.gh]\nsource = "demo"\n[hosts]\n"github.com" = "gh"\n')
    assert helperlib.load_routes(good) == {"github.com": hosts.Route("gh")}
    assert helperlib.route_for("https://github.com/a/b", good) == hosts.Route("gh")
    assert helperlib.load_routes(str(env / "missing.toml")) == {}
    loose = write(env / "l.toml", '[hosts]\n"github.com" = "gh"\n', 0o666)
    with pytest.raises(helperlib.HelperError, match="writable by group or others") as err:
        helperlib.load_routes(loose)
    assert err.value.status == 2
    bad = write(env / "b.toml", '[hosts]\n"GitHub.com" = "gh"\n')
    with pytest.raises(helperlib.HelperError, match=r'hosts\."GitHub.com": expected a lower-case'):
        helperlib.load_routes(bad)
    broken = write(env / "x.toml", "[hosts\n")
    with pytest.raises(helperlib.HelperError, match="invalid TOML"):
        helperlib.load_routes(broken)


def fake_credential(doc: dict[str, Any]) -> Any:
    def credential(
        profile: str, *, refresh: bool = False, daemon: bool = True, deadline: float | None = None
    ) -> dict[str, Any]:
        return doc

    return credential


@pytest.mark.parametrize(
    ("doc", "route", "host", "expected"),
    [
        (
            {"kind": "bearer", "token": "ya29.tok", "expires_at": "2026-11-24T13:00:00Z"},
            hosts.Route("g"),
            "us-docker.pkg.dev",
            helperlib.Login("oauth2accesstoken", "ya29.tok", 1795525200),
        ),
        (
            {"kind": "basic", "username": "robot", "password": "pw-123456", "token": "pw-123456"},
            hosts.Route("b"),
            "git.example.com",
            helperlib.Login("robot", "pw-123456", None),
        ),
        (
            {"kind": "secret", "token": "s3cr3t-value", "expires_at": None},
            hosts.Route("s", "me"),
            "github.com",
            helperlib.Login("me", "s3cr3t-value", None),
        ),
    ],
)
def test_login_by_kind(
    monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any], route: hosts.Route, host: str, expected: Any
) -> None:
    monkeypatch.setattr(helperlib, "credential", fake_credential(doc))
    assert helperlib.login(route.profile, route, host) == expected


def test_aws_credentials_are_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helperlib, "credential", fake_credential({"kind": "aws", "AccessKeyId": "AKIA"}))
    with pytest.raises(helperlib.HelperError, match="gives aws credentials"):
        helperlib.login("a", hosts.Route("a"), "x.example")


def test_a_newline_in_a_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helperlib, "credential", fake_credential({"kind": "bearer", "token": "a\nb=c"}))
    with pytest.raises(helperlib.HelperError, match="newline"):
        helperlib.login("a", hosts.Route("a"), "x.example")


def test_expiry_stamps_become_posix_seconds() -> None:
    import calendar
    import random
    import time

    rng = random.Random(3)
    for t in [0, 951782400, 4102444799, *(rng.randint(0, 4102444800) for _ in range(500))]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        assert helperlib._epoch(stamp) == calendar.timegm(time.gmtime(t)) == t
    for bad in (None, "", "2026-11-24 13:00:00Z", "2026-11-24T13:00:00+00:00", "20xx-11-24T13:00:00Z"):
        assert helperlib._epoch(bad) is None
