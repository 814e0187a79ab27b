"""The ``[hosts]`` table: patterns, routes, matching, default usernames, config validation."""

from __future__ import annotations

import textwrap

import pytest

from tokend.client import hosts
from tokend.core import config
from tokend.core.errors import ConfigError

PROFILES = """\
[profiles.gh]
source = "demo"

[profiles.gar]
source = "demo"
"""


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("github.com", "github.com"),
        ("https://GitHub.com/owner/repo.git", "github.com"),
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("registry.example:5000", "registry.example:5000"),
        ("https://registry.example:443/v2/", "registry.example"),
        ("https://user@git.example.com/x", "git.example.com"),
        ("us-docker.pkg.dev.", "us-docker.pkg.dev"),
    ],
)
def test_normalize(text: str, host: str) -> None:
    assert hosts.normalize(text) == host


@pytest.mark.parametrize("key", ["github.com", "*.pkg.dev", "localhost:5000", "a-b.example"])
def test_valid_patterns(key: str) -> None:
    assert hosts.check_pattern(key) is None


@pytest.mark.parametrize("key", ["GitHub.com", "*", "a.*.com", "-x.com", "https://x.com", "x.com/path", ""])
def test_invalid_patterns(key: str) -> None:
    assert hosts.check_pattern(key) is not None


def test_exact_beats_wildcards_and_the_longest_wildcard_wins() -> None:
    routes = {"*.example.com": "wide", "*.eu.example.com": "eu", "git.eu.example.com": "exact"}
    assert hosts.match(routes, "git.eu.example.com") == "exact"
    assert hosts.match(routes, "https://reg.eu.example.com/v2/") == "eu"
    assert hosts.match(routes, "reg.us.example.com") == "wide"
    assert hosts.match(routes, "example.com") is None  # "*." needs a label in front
    assert hosts.match(routes, "notexample.com") is None


def test_default_usernames() -> None:
    assert hosts.default_username("us-docker.pkg.dev") == "oauth2accesstoken"
    assert hosts.default_username("123456789012.dkr.ecr.us-east-1.amazonaws.com") == "AWS"
    assert hosts.default_username("myreg.azurecr.io") == "00000000-0000-0000-0000-000000000000"
    assert hosts.default_username("github.com") == "x-access-token"
    assert hosts.default_username("git.example.com") == hosts.FALLBACK_USERNAME


def test_routes_from_config() -> None:
    cfg = config.parse(
        PROFILES
        + textwrap.dedent(
            """
            [hosts]
            "github.com" = "gh"
            "*.pkg.dev" = { profile = "gar", username = "oauth2accesstoken" }
            """
        ),
        None,
    )
    assert cfg.hosts["github.com"] == hosts.Route("gh")
    assert cfg.hosts["*.pkg.dev"] == hosts.Route("gar", "oauth2accesstoken")


def test_no_hosts_table_means_no_routes() -> None:
    assert dict(config.parse(PROFILES, None).hosts) == {}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('"github.com" = "nobody"', "no profile named 'nobody'"),
        ('"GitHub.com" = "gh"', "lower-case host name"),
        ('"github.com" = 3', "expected a profile name or a table"),
        ('"github.com" = { profile = "gh", user = "x" }', "unknown key 'user'"),
        ('"github.com" = { profile = "gh", username = "a:b" }', "without ':'"),
    ],
)
def test_bad_routes_name_the_key(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(PROFILES + "\n[hosts]\n" + entry + "\n", None)
    assert message in err.value.message
    assert "hosts." in err.value.message
