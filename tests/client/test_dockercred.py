"""docker's credential-helper protocol, as ``tokend.client.dockercred`` speaks it (credentials faked)."""

from __future__ import annotations

import json

import pytest

from tokend.client import dockercred, helperlib, hosts

ROUTES = {
    "us-docker.pkg.dev": hosts.Route("gar"),
    "*.dkr.ecr.us-east-1.amazonaws.com": hosts.Route("ecr"),
    "ghcr.io": hosts.Route("gh", "octocat"),
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
            line = "tokend: broken: the SSO session has expired; run: tokend login broken"
            raise helperlib.HelperError(line, 4)
        return helperlib.Login(route.username or hosts.default_username(host), f"secret-{profile}", None)

    monkeypatch.setattr(helperlib, "load_routes", lambda path=None, daemon=True: ROUTES)
    monkeypatch.setattr(helperlib, "login", login)
    return seen


def test_get(calls: list[tuple[str, bool]]) -> None:
    out = dockercred.run("get", "us-docker.pkg.dev\n")
    assert json.loads(out) == {
        "ServerURL": "us-docker.pkg.dev",
        "Username": "oauth2accesstoken",
        "Secret": "secret-gar",
    }
    ecr = json.loads(dockercred.run("get", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"))
    assert ecr["Username"] == "AWS" and ecr["Secret"] == "secret-ecr"
    assert ecr["ServerURL"] == "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_unknown_registry_is_the_exact_not_found_answer(calls: list[tuple[str, bool]]) -> None:
    with pytest.raises(dockercred.Failed) as err:
        dockercred.run("get", "quay.io")
    assert str(err.value) == "credentials not found in native keychain"
    assert calls == []


def test_a_failing_profile_answers_its_error_line(calls: list[tuple[str, bool]]) -> None:
    with pytest.raises(dockercred.Failed, match="run: tokend login broken"):
        dockercred.run("get", "bad.example")


def test_list_shows_exact_registries_and_no_secret(calls: list[tuple[str, bool]]) -> None:
    assert json.loads(dockercred.run("list", "")) == {
        "us-docker.pkg.dev": "oauth2accesstoken",
        "ghcr.io": "octocat",
        "bad.example": "tokend",
    }
    assert calls == []


def test_store_and_erase(calls: list[tuple[str, bool]]) -> None:
    body = json.dumps({"ServerURL": "ghcr.io", "Username": "octocat", "Secret": "given"})
    assert dockercred.run("store", body) == ""
    with pytest.raises(dockercred.Failed, match=r"map quay\.io to a profile"):
        dockercred.run("store", json.dumps({"ServerURL": "https://quay.io/v2/", "Secret": "x"}))
    with pytest.raises(dockercred.Failed, match="expected JSON"):
        dockercred.run("store", "not json")
    assert dockercred.run("erase", "ghcr.io") == ""
    assert calls == [("gh", True)]
    with pytest.raises(dockercred.Failed, match="unknown operation"):
        dockercred.run("frobnicate", "")
