"""``address`` as a list of a cluster's nodes: the walk from node to node, against small local servers.

The real three-node cluster (tests/integration/test_openbao_cluster.py) shows
a failover as it happens; these cover what it cannot produce on demand: a
redirect to an unlisted address, every node unreachable, sealed nodes, a hung
node. Each node here is a ``LocalHTTPServer`` whose behaviour the test sets;
a serving node answers only the exact token.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.fakes.server import LocalHTTPServer
from tests.sources.test_contract import profile_toml
from tokend.core import config
from tokend.core.broker import Broker, build_source
from tokend.core.credential import Credential
from tokend.core.errors import ConfigError, SourceError, SourceTimeout
from tokend.sources.base import FetchRequest
from tokend.sources.vault import VaultSource

TOKEN = "hvs.nodes-test-token"
SECRET = "sk-from-the-cluster"
#: What a node answers: (status, headers, JSON body), or None to hang.
Answer = tuple[int, dict[str, str], Any]


def serve(handler: BaseHTTPRequestHandler) -> Answer:
    """A healthy node: lookup-self and one KV v2 secret, for the exact token only."""
    if handler.headers.get("X-Vault-Token") != TOKEN:
        return 403, {}, {"errors": ["permission denied"]}
    if handler.path == "/v1/auth/token/lookup-self":
        return 200, {}, {"data": {"ttl": 0, "renewable": False}}
    if handler.path == "/v1/secret/data/app":
        return 200, {}, {"data": {"data": {"api_key": SECRET}, "metadata": {"version": 1}}}
    return 404, {}, {"errors": []}


def fixed(status: int, message: str, headers: dict[str, str] | None = None) -> Callable[..., Answer]:
    return lambda handler: (status, headers or {}, {"errors": [message] if message else []})


class Node:
    """One local HTTP server answering as ``behaviour`` says, counting the requests it got."""

    def __init__(self, behaviour: Callable[[BaseHTTPRequestHandler], Answer | None]) -> None:
        self.behaviour = behaviour
        self.requests: list[tuple[str, str, str | None]] = []
        self.release = threading.Event()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                node.requests.append((self.command, self.path, self.headers.get("X-Vault-Token")))
                answer = node.behaviour(self)
                if answer is None:
                    node.release.wait(30)
                    return
                status, headers, body = answer
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _any

        self.server = LocalHTTPServer(Handler, poll_interval=0.05).start()
        self.url = self.server.url

    def stop(self) -> None:
        self.release.set()
        self.server.stop()


@pytest.fixture(autouse=True)
def vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "BAO_ADDR", "BAO_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no real ~/.vault-token
    monkeypatch.setenv("TD_VAULT_TOKEN", TOKEN)


@pytest.fixture
def nodes() -> Iterator[Callable[..., Node]]:
    started: list[Node] = []

    def make(behaviour: Callable[[BaseHTTPRequestHandler], Answer | None] = serve) -> Node:
        node = Node(behaviour)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def dead_address() -> str:
    """A loopback address nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def options(address: object, **more: Any) -> dict[str, Any]:
    return {"address": address, "token": "env:TD_VAULT_TOKEN", "mount": "secret", "path": "app", **more}


def source(address: object, clock: FakeClock) -> VaultSource:
    profile = config.parse(profile_toml("vault", options(address)), None).profile("contract")
    src = build_source(profile, clock)
    assert isinstance(src, VaultSource)
    return src


def fetch(src: VaultSource, timeout: float = 5.0) -> Credential:
    return src.fetch(FetchRequest(profile="contract", timeout=timeout))


def reads(node: Node) -> int:
    return sum(1 for _, path, _ in node.requests if path == "/v1/secret/data/app")


# -- configuration ------------------------------------------------------------------------------


def test_address_may_list_nodes_each_checked() -> None:
    cfg = config.parse(profile_toml("vault", options(["https://a:8200", "https://b:8200/"])), None)
    assert cfg.profile("contract").options["address"] == ("https://a:8200", "https://b:8200/")
    with pytest.raises(
        ConfigError, match=r"profiles\.contract\.address: expected https://HOST:PORT, got 'b:8200'"
    ):
        config.parse(profile_toml("vault", options(["https://a:8200", "b:8200"])), None)
    with pytest.raises(ConfigError, match="listed twice"):
        config.parse(profile_toml("vault", options(["https://a:8200", "https://A:8200/"])), None)
    with pytest.raises(ConfigError, match="a string or a non-empty array of strings"):
        config.parse(profile_toml("vault", options([])), None)


# -- walking the nodes ----------------------------------------------------------------------------


def test_dead_and_leaderless_nodes_are_skipped_and_the_answering_one_remembered(
    nodes: Callable[..., Node], clock: FakeClock
) -> None:
    leaderless = nodes(fixed(500, "local node not active but active cluster node not found"))
    good = nodes()
    src = source([dead_address(), leaderless.url, good.url], clock)
    assert fetch(src).fields["value"] == SECRET
    # Its first request (the token's lookup) went down the list; the read started where it ended.
    assert len(leaderless.requests) == 1 and reads(good) == 1
    # The next fetch starts at the node that answered: the others are not asked again.
    assert fetch(src).fields["value"] == SECRET
    assert len(leaderless.requests) == 1 and reads(good) == 2
    assert all(token == TOKEN for _, _, token in good.requests)


def test_a_redirect_is_followed_only_to_a_listed_node(nodes: Callable[..., Node], clock: FakeClock) -> None:
    good = nodes()
    standby = nodes(lambda h: (307, {"Location": f"{good.url}{h.path}"}, None))
    src = source([standby.url, good.url], clock)
    assert fetch(src).fields["value"] == SECRET
    assert len(standby.requests) == 1 and reads(good) == 1

    outsider = nodes()  # a working Vault, but not one the profile lists: it must get nothing
    rogue = nodes(lambda h: (307, {"Location": f"{outsider.url}{h.path}"}, None))
    with pytest.raises(SourceError) as info:
        fetch(source(rogue.url, clock))
    message = info.value.message
    assert f"Vault at {rogue.url} redirected to {outsider.url}/v1/" in message, message
    assert "not listed in address: refused" in message, message
    assert outsider.requests == []
    # Listed with others, the refusal is one part of the line naming every node tried.
    with pytest.raises(SourceError) as info:
        fetch(source([rogue.url, dead_address()], clock))
    assert f"{rogue.url}: redirected to {outsider.url}" in info.value.message
    assert outsider.requests == []


def test_every_node_unreachable_is_one_line_naming_each(clock: FakeClock) -> None:
    addresses = [dead_address() for _ in range(3)]
    with pytest.raises(SourceError) as info:
        fetch(source(addresses, clock))
    message = info.value.message
    assert "\n" not in message and message.startswith("no Vault node could answer: "), message
    for address in addresses:
        assert f"{address}: unreachable (ConnectionError)" in message, message
    assert info.value.retryable


def test_sealed_nodes_are_named(nodes: Callable[..., Node], clock: FakeClock) -> None:
    sealed = [nodes(fixed(503, "Vault is sealed")) for _ in range(3)]
    with pytest.raises(SourceError, match=f"Vault is sealed at {sealed[0].url}") as info:
        fetch(source(sealed[0].url, clock))
    assert info.value.retryable
    with pytest.raises(SourceError) as info:
        fetch(source([n.url for n in sealed], clock))
    assert info.value.message.endswith(f"Vault is sealed at {', '.join(n.url for n in sealed)}")
    # Mixed: each node with its own answer.
    dead = dead_address()
    with pytest.raises(SourceError) as info:
        fetch(source([sealed[0].url, dead], clock))
    assert f"Vault is sealed at {sealed[0].url}; {dead}: unreachable" in info.value.message


def test_denied_is_an_answer_not_a_reason_to_walk_on(nodes: Callable[..., Node], clock: FakeClock) -> None:
    denying = nodes(
        lambda h: (403, {}, {"errors": ["permission denied"]}) if "secret" in h.path else serve(h)
    )
    other = nodes()
    with pytest.raises(SourceError, match="check that the token's policies allow it on secret/data/app"):
        fetch(source([denying.url, other.url], clock))
    assert reads(other) == 0


def until(
    seconds: float, then: Callable[[BaseHTTPRequestHandler], Answer], before: Callable[..., Answer]
) -> Any:
    """A behaviour that is ``before`` for ``seconds`` from now, then ``then``."""
    switch = time.monotonic() + seconds
    return lambda h: before(h) if time.monotonic() < switch else then(h)


@pytest.mark.timeout(60)
def test_an_election_is_waited_out_within_the_deadline(nodes: Callable[..., Node], clock: FakeClock) -> None:
    leaderless = fixed(500, "local node not active but active cluster node not found")
    first = nodes(until(1.0, serve, leaderless))
    second = nodes(until(1.0, serve, leaderless))
    assert fetch(source([first.url, second.url], clock), timeout=10.0).fields["value"] == SECRET
    assert len(first.requests) > 1  # walked again after a pause, not failed at once
    # Standbys still redirecting to the dead active node (listed, unreachable): the same.
    dead = dead_address()
    standby = nodes(until(1.0, serve, lambda h: (307, {"Location": f"{dead}{h.path}"}, None)))
    assert fetch(source([dead, standby.url], clock), timeout=10.0).fields["value"] == SECRET
    # Not while the deadline leaves no room for another pass: the error at once.
    still = nodes(leaderless)
    with pytest.raises(SourceError, match="active cluster node not found"):
        fetch(source([still.url, dead], clock), timeout=2.0)
    assert len(still.requests) == 1


@pytest.mark.timeout(60)
def test_a_hung_node_leaves_time_for_the_next(nodes: Callable[..., Node], clock: FakeClock) -> None:
    hung = nodes(lambda h: None)
    good = nodes()
    assert fetch(source([hung.url, good.url], clock), timeout=10.0).fields["value"] == SECRET
    # Every node hung: a timeout bounded by the one deadline (wide margin), naming both.
    other = nodes(lambda h: None)
    start = time.monotonic()
    with pytest.raises(SourceTimeout) as info:
        fetch(source([hung.url, other.url], clock), timeout=4.0)
    assert time.monotonic() - start < 30
    assert hung.url in info.value.message and other.url in info.value.message


def test_cached_secret_served_while_no_node_answers(nodes: Callable[..., Node], clock: FakeClock) -> None:
    good = nodes()
    standby = nodes(fixed(500, "local node not active but active cluster node not found"))
    text = profile_toml("vault", options([good.url, standby.url], ttl="5m", timeout="2s"))
    broker = Broker(config.parse(text.replace("[profiles.contract]", "[profiles.kv]"), None), clock=clock)
    try:
        assert broker.get("kv").fields["value"] == SECRET
        good.behaviour = fixed(500, "local node not active but active cluster node not found")
        clock.advance(400)  # past its refresh: the refresh fails on every node
        assert broker.get("kv").fields["value"] == SECRET
        deadline = time.monotonic() + 20
        while not any(r.get("last_error") for r in broker.status() if r["profile"] == "kv"):
            assert time.monotonic() < deadline, broker.status()
            time.sleep(0.05)
        assert broker.get("kv").fields["value"] == SECRET
        # The election is over: the next refresh succeeds without a restart.
        good.behaviour = serve
        before = reads(good)
        clock.advance(3600)
        assert broker.get("kv").fields["value"] == SECRET
        deadline = time.monotonic() + 20
        while reads(good) == before:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        broker.close()
