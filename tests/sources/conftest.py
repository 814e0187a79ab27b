from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sources import brokered


@pytest.fixture(autouse=True)
def _close_brokers() -> Iterator[None]:
    yield
    brokered.close_all()
