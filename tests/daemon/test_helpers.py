"""The ``helper`` request: the daemon renders the git and docker helpers' whole answer.

A real broker and real ``command`` sources (a Python child printing the token);
requests go through ``Daemon.dispatch`` as the connection hands them over.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Iterator

import pytest

from tokend.client import protocol
from tokend.core import config
from tokend.core.broker import Broker
from tokend.daemon.server import Daemon

NOT_FOUND = (1, b"credentials not found in native keychain\n")


def _command(printed: str) -> str:
    return json.dumps([sys.executable, "-I", "-S", "-c", printed])


def _json_token(token: str) -> str:
    return _command(f"import json; print(json.dumps({{'token': {token!r}, 'expires_in': 3600}}))")


GH = _command("import os; print('ghp-' + os.urandom(8).hex())")
NEWLINE = _json_token("tok-1\nhost=evil.example")
TAB = _json_token("tok-2\tx")
CONFIG = f"""
[profiles.gh]
source = "command"
command = {GH}
[profiles.newline]
source = "command"
command = {NEWLINE}
[profiles.tab]
source = "command"
command = {TAB}
[hosts]
"github.com" = "gh"
"*.example.com" = {{ profile = "gh", username = "ci" }}
"newline.example" = "newline"
"tab.example" = "tab"
"""


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    broker = Broker(config.parse(CONFIG, None))
    try:
        yield Daemon(broker, reload_config=lambda: broker.config, request_stop=lambda: None, socket_path="/x")
    finally:
        broker.close()


def ask(daemon: Daemon, **fields: str) -> tuple[int, bytes]:
    """``fields`` as a ``helper`` request line, decoded as the connection does, and its reply."""
    op, decoded = protocol.decode_request(protocol.encode_request("helper", fields).rstrip(b"\n"))
    result = daemon.dispatch(op, decoded)
    if isinstance(result, tuple):
        return result

    async def wait(pending: Awaitable[tuple[int, bytes]]) -> tuple[int, bytes]:
        return await pending

    return asyncio.run(wait(result))


def lines(body: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in body.decode().splitlines())


def test_git_answer_is_exactly_the_helper_output(daemon: Daemon) -> None:
    status, body = ask(daemon, format="git-credential", host="github.com", protocol="https")
    assert status == 0
    got = lines(body)
    assert list(got) == ["username", "password", "password_expiry_utc"]
    assert body.endswith(b"\n") and body.count(b"\n") == 3
    assert got["username"] == "x-access-token" and got["password"].startswith("ghp-")
    assert 2400 < int(got["password_expiry_utc"]) - time.time() <= 3000  # the command source's default ttl
    # A wildcard route with its own username; a host as git may spell it.
    _, other = ask(daemon, format="git-credential", host="Git.Example.COM:443", protocol="https")
    assert lines(other)["username"] == "ci" and lines(other)["password"] == got["password"]


def test_docker_answer_echoes_the_server_url(daemon: Daemon) -> None:
    status, body = ask(daemon, format="docker-credential", host="https://git.example.com/v2/")
    assert status == 0 and body.endswith(b"}\n")
    doc = json.loads(body)
    assert doc["ServerURL"] == "https://git.example.com/v2/" and doc["Username"] == "ci"
    assert doc["Secret"].startswith("ghp-")


@pytest.mark.parametrize("fmt", ["git-credential", "docker-credential"])
def test_unknown_route_is_each_helpers_not_found(daemon: Daemon, fmt: str) -> None:
    got = ask(daemon, format=fmt, host="gitlab.com", protocol="https")
    assert got == ((0, b"") if fmt == "git-credential" else NOT_FOUND)


def test_git_over_plain_http_gets_nothing(daemon: Daemon) -> None:
    assert ask(daemon, format="git-credential", host="github.com", protocol="http") == (0, b"")
    assert ask(daemon, format="git-credential", host="github.com") == (0, b"")


@pytest.mark.parametrize(
    "host", ["", "   ", "github.com\nusername=evil", "github.com\tx", "github.com\x00", "a" * 3000]
)
@pytest.mark.parametrize("fmt", ["git-credential", "docker-credential"])
def test_bad_hosts_are_refused(daemon: Daemon, fmt: str, host: str) -> None:
    status, body = ask(daemon, format=fmt, host=host, protocol="https")
    assert status == 2 and body.startswith(b"tokend: malformed request: ")
    assert b"password" not in body and b"Secret" not in body


def test_unknown_format_is_refused(daemon: Daemon) -> None:
    status, body = ask(daemon, format="json", host="github.com", protocol="https")
    assert status == 2 and b"unknown helper format 'json'" in body


@pytest.mark.parametrize(("host", "value"), [("newline.example", "tok-1"), ("tab.example", "tok-2")])
@pytest.mark.parametrize("fmt", ["git-credential", "docker-credential"])
def test_a_control_character_in_the_credential_is_refused(
    daemon: Daemon, fmt: str, host: str, value: str
) -> None:
    status, body = ask(daemon, format=fmt, host=host, protocol="https")
    assert status == 1
    assert body.count(b"\n") == 1 and b"contains a control character" in body
    assert value.encode() not in body and b"evil" not in body and b"password=" not in body


def test_erase_fetches_a_new_credential_and_prints_nothing(daemon: Daemon) -> None:
    _, first = ask(daemon, format="git-credential", host="github.com", protocol="https")
    assert ask(daemon, format="git-credential", host="github.com", protocol="https", refresh="1") == (0, b"")
    _, second = ask(daemon, format="git-credential", host="github.com", protocol="https")
    assert lines(second)["password"] != lines(first)["password"]
    assert ask(daemon, format="docker-credential", host="github.com", refresh="1") == (0, b"")
