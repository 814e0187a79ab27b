"""Fixtures the end-to-end tests share: a sandbox per test, the real clients once per module."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.clients import CLAUDE_CODE, CODEX
from tests.fakes.google import FakeGoogle, fake_google
from tests.integration.conftest import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(Path(tempfile.mkdtemp(prefix="td", dir="/tmp")))
    try:
        yield box
    finally:
        box.cleanup()


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    yield from fake_google()


@pytest.fixture(scope="module")
def claude() -> str:
    return CLAUDE_CODE.path()


@pytest.fixture(scope="module")
def codex() -> str:
    return CODEX.path()
