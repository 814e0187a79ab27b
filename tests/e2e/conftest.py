"""Fixtures the end-to-end tests share: a sandbox per test; moto and the real clients once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.clients import CLAUDE_CODE, CODEX
from tests.fakes.google import FakeGoogle, fake_google
from tests.integration.conftest import moto, sandbox  # noqa: F401  (the same fixtures here)


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture(scope="module")
def claude() -> str:
    return CLAUDE_CODE.path()


@pytest.fixture(scope="module")
def codex() -> str:
    return CODEX.path()
