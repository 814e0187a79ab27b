"""A short run of benchmarks/fuzz_protocol.py: mutated and pipelined requests against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FUZZER = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_protocol.py"


@pytest.mark.timeout(120)
def test_twenty_thousand_fuzzed_requests_leave_the_daemon_serving() -> None:
    # A few seconds here; the full run (a million requests) is in benchmarks/.
    r = subprocess.run(
        [sys.executable, str(FUZZER), "--requests", "20000", "--workers", "2", "--seed", "7", "--json"],
        capture_output=True,
        timeout=110,
    )
    assert r.returncode in (0, 1), r.stderr.decode(errors="replace")
    summary = json.loads(r.stdout)
    assert summary["requests"] >= 20000
    assert summary["daemon_crashed"] == 0
    assert summary.get("malformed_reply", 0) == 0
    assert summary.get("hung", 0) == 0
    assert summary.get("connect_failed", 0) == 0
    assert summary["demo_after"] == "ok"
    assert summary["secrets_in_log"] == 0
    assert summary["answered"] > 5000
    assert r.returncode == 0, summary
