"""Shared unit-test fixtures: a settable clock and short temporary directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# tokend changes its defaults under CI=true (daemonless, no keychain, never a
# prompt): tests opt into that one by one, so the variables of the CI system
# running this suite must not reach every test (nor the processes they start).
for _name in ("CI", "GITHUB_ENV", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
    os.environ.pop(_name, None)

#: An arbitrary, fixed "now" (2023-11-14T22:13:20Z) so tests never depend on the real date.
EPOCH = 1_700_000_000.0


class FakeClock:
    """A wall clock tests move by hand (``advance`` may jump, like a resumed laptop)."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A temporary directory with a short path (unix socket paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="td", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
