"""git's credential protocol, as ``tokend.client.gitcred`` speaks it (routes and credentials faked)."""

from __future__ import annotations

import pytest

from tokend.client import gitcred, helperlib, hosts

ROUTES = {
    "github.com": hosts.Route("gh"),
    "*.example.com": hosts.Route("corp", "ci"),
    "bad.example": hosts.Route("broken"),
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []

    def login(
        profile: str,
        route: hosts.Route,
        host: str,
        *,
        refresh: bool = False,
        daemon: bool = True,
        deadline: float | None = None,
    ) -> helperlib.Login:
        seen.append((profile, refresh))
        if profile == "broken":
            raise helperlib.HelperError("tokend: broken: not signed in; run: tokend login broken", 4)
        return helperlib.Login(route.username or hosts.default_username(host), f"pw-{profile}", 1795525200)

    monkeypatch.setattr(helperlib, "load_routes", lambda path=None, daemon=True: ROUTES)
    monkeypatch.setattr(helperlib, "login", login)
    return seen


def test_read_attributes_stops_at_the_blank_line() -> None:
    data = b"protocol=https\r\nhost=github.com\npath=a/b.git\ncapability[]=authtype\n\nhost=evil\n"
    assert gitcred.read_attributes(data) == {
        "protocol": "https",
        "host": "github.com",
        "path": "a/b.git",
        "capability[]": "authtype",
    }


def test_get_answers_username_password_and_expiry(calls: list[tuple[str, bool]]) -> None:
    out = gitcred.answer("get", {"protocol": "https", "host": "github.com"})
    assert out == "username=x-access-token\npassword=pw-gh\npassword_expiry_utc=1795525200\n"
    assert gitcred.answer("get", {"protocol": "https", "host": "git.example.com"}).startswith("username=ci\n")
    assert calls == [("gh", False), ("corp", False)]


@pytest.mark.parametrize(
    "attrs",
    [
        {"protocol": "https", "host": "gitlab.com"},  # not mapped: git asks its next helper
        {"protocol": "http", "host": "github.com"},  # never over plain http
        {"protocol": "https"},
    ],
)
def test_nothing_for_unmapped_hosts_or_plain_http(
    calls: list[tuple[str, bool]], attrs: dict[str, str]
) -> None:
    assert gitcred.answer("get", attrs) == ""
    assert calls == []


def test_store_does_nothing_and_erase_refreshes(calls: list[tuple[str, bool]]) -> None:
    attrs = {"protocol": "https", "host": "github.com", "username": "x", "password": "old"}
    assert gitcred.answer("store", attrs) == ""
    assert calls == []
    assert gitcred.answer("erase", attrs) == ""
    assert calls == [("gh", True)]


def test_failures_are_raised_with_their_status(calls: list[tuple[str, bool]]) -> None:
    with pytest.raises(helperlib.HelperError) as err:
        gitcred.answer("get", {"protocol": "https", "host": "bad.example"})
    assert err.value.status == 4 and "run: tokend login broken" in err.value.line
