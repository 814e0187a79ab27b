"""CI=true: daemonless by default (TOKEND_NO_DAEMON decides when set), in both the CLI and the fast path."""

from __future__ import annotations

import pytest

from tokend import ci
from tokend.client import fastpath

CASES = [
    ({}, False),
    ({"CI": "true"}, True),
    ({"CI": "TRUE"}, True),
    ({"CI": "1"}, True),
    ({"CI": "false"}, False),
    ({"CI": "true", "TOKEND_NO_DAEMON": "0"}, False),  # a runner with a daemon of its own
    ({"CI": "true", "TOKEND_NO_DAEMON": ""}, True),
    ({"TOKEND_NO_DAEMON": "1"}, True),
    ({"TOKEND_NO_DAEMON": "yes"}, True),
]


@pytest.mark.parametrize(("env", "expected"), CASES)
def test_daemonless(env: dict[str, str], expected: bool) -> None:
    assert ci.daemonless(env) is expected


@pytest.mark.parametrize(("env", "expected"), CASES)
def test_fast_path_agrees(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool) -> None:
    monkeypatch.setattr(fastpath, "getenv", env.get)
    assert fastpath.no_daemon() is expected



def test_active() -> None:
    assert ci.active({"CI": "true"}) and ci.active({"CI": " yes "}) and not ci.active({})
