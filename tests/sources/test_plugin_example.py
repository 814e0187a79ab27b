"""The example third-party source (examples/tokend-http-token) passes the contract, found by entry point.

The plug-in is "installed" the way pip would leave it: a ``.dist-info`` with
``entry_points.txt`` on ``sys.path`` next to its module; no pip at test time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.fakes.server import LocalHTTPServer
from tests.sources import brokered
from tests.sources.test_contract import SourceContract, profile_toml
from tokend.core import config
from tokend.core.errors import ConfigError, SourceError
from tokend.sources import registry
from tokend.sources.base import BaseSource, Source

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tokend-http-token"


def install_example(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = site / "tokend_http_token-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tokend-http-token\nVersion: 0.1\n")
    entry = "http-token = tokend_http_token:HttpTokenSource"
    (dist / "entry_points.txt").write_text(f"[tokend.sources]\n{entry}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))


class TokenEndpoint(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, bytes]]] = []
    served: ClassVar[int] = 0

    def do_GET(self) -> None:
        type(self).served += 1
        status, body = self.answers[0] if self.answers else (200, b"")
        if not self.answers:
            body = json.dumps({"token": f"example-token-{self.served}", "expires_in": 3600}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[LocalHTTPServer]:
    TokenEndpoint.answers, TokenEndpoint.served = [], 0
    with LocalHTTPServer(TokenEndpoint, name="example-token-endpoint") as server:
        yield server


class TestExamplePluginContract(SourceContract):
    source_name = "http-token"

    @pytest.fixture(autouse=True)
    def installed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        install_example(tmp_path / "site", monkeypatch)

    @pytest.fixture
    def options(self, endpoint: LocalHTTPServer) -> dict[str, Any]:
        return {"url": endpoint.url + "/token"}

    @pytest.fixture
    def unavailable_options(self, endpoint: LocalHTTPServer) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:9/token"}  # the discard port: nothing listens


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_example(tmp_path / "site", monkeypatch)


def test_the_plugin_is_adapted_to_the_optional_capabilities(example: None, endpoint: LocalHTTPServer) -> None:
    cls = registry.lookup("http-token")
    assert cls is not None and "http-token" in registry.names()
    source = brokered.build(config.parse(profile_toml("http-token", {"url": endpoint.url}), None), "contract")
    assert isinstance(source, Source) and isinstance(source, BaseSource)
    assert source.fingerprint() is None and not source.supports_login
    source.close()


def test_the_plugin_validates_at_load(example: None) -> None:
    with pytest.raises(ConfigError, match=r"profiles.contract.url: expected https://HOST/"):
        config.parse(profile_toml("http-token", {"url": "http://example.com/token"}), None)


def test_the_plugin_errors(example: None, endpoint: LocalHTTPServer) -> None:
    source = brokered.build(config.parse(profile_toml("http-token", {"url": endpoint.url}), None), "contract")
    TokenEndpoint.answers = [(503, b"busy")]
    with pytest.raises(SourceError) as info:
        brokered.fetch(source)
    assert info.value.retryable
    TokenEndpoint.answers = [(200, b"not json")]
    with pytest.raises(SourceError) as info:
        brokered.fetch(source)
    assert not info.value.retryable
