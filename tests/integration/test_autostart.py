"""``tokend-print`` with no daemon running: it starts exactly one, detached."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.conftest import TOKEND_PRINT, Sandbox, mode_of, ping


def _session_id(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[3])  # state ppid pgrp session


@pytest.mark.timeout(90)
def test_autostart_herd_starts_exactly_one_daemon(sandbox: Sandbox) -> None:
    up = sandbox.upstream("herd", delay=0.5)
    sandbox.write_config(sandbox.command_profile("herd", up, min_ttl="5s"))
    assert sandbox.daemon_pids() == []

    # A generous deadline: this test counts fetches and daemons, not latency on a busy machine.
    env = sandbox.env(TOKEND_TIMEOUT="20")
    results = sandbox.run_many([[TOKEND_PRINT, "herd"]] * 60, env=env, timeout=60)

    failures = [r for r in results if r.status != 0]
    assert not failures, failures[:3]
    assert up.fetches == 1, up.lines()
    (token,) = up.tokens()
    assert {r.out for r in results} == {token + "\n"}
    assert all(r.err == "" for r in results), {r.err for r in results}

    daemons = sandbox.daemon_pids()
    assert len(daemons) == 1, daemons
    (pid,) = daemons
    doc = sandbox.status()
    assert doc["pid"] == pid
    assert doc["socket"] == sandbox.socket_path
    # The instance lock names the same daemon.
    assert (sandbox.rundir / "daemon.lock").read_text().strip() == str(pid)
    # Detached: its own session, no terminal, not a child of any helper (all exited).
    assert _session_id(pid) == pid
    assert mode_of(sandbox.rundir) == 0o700
    assert mode_of(sandbox.socket_path) == 0o600
    # Its output goes to the log in the runtime dir.
    log = sandbox.rundir / "tokend.log"
    text = log.read_text()
    assert f"tokend {pid} serving on {sandbox.socket_path}" in text
    # One daemon was started, not several of which all but one lost the instance lock.
    assert text.count("serving on") == 1, text
    assert "already running" not in text, text
    assert token not in text
    assert mode_of(log) == 0o600

    # Later calls are served by that daemon from its cache.
    assert sandbox.print_("herd").out == token + "\n"
    assert up.fetches == 1

    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while sandbox.daemon_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.daemon_pids() == []


@pytest.mark.timeout(60)
def test_autostart_replaces_a_daemon_killed_with_sigkill(sandbox: Sandbox) -> None:
    up = sandbox.upstream("phoenix")
    sandbox.write_config(sandbox.command_profile("phoenix", up, min_ttl="5s"))
    first = sandbox.print_("phoenix")
    assert first.status == 0
    (old,) = sandbox.daemon_pids()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while old in sandbox.daemon_pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.exists(sandbox.socket_path)  # the stale socket is left behind
    assert not ping(sandbox.socket_path)

    second = sandbox.print_("phoenix")
    assert second.status == 0, second
    assert second.out == up.tokens()[-1] + "\n"
    (new,) = sandbox.daemon_pids()
    assert new != old
    assert sandbox.status()["pid"] == new


@pytest.mark.timeout(60)
def test_no_autostart_goes_daemonless(sandbox: Sandbox) -> None:
    up = sandbox.upstream("manual")
    sandbox.write_config(sandbox.command_profile("manual", up, min_ttl="5s"))
    env = sandbox.env(TOKEND_NO_AUTOSTART="1")
    r = sandbox.print_("manual", env=env)
    assert r.status == 0 and r.out == up.tokens()[0] + "\n"
    assert sandbox.daemon_pids() == []
    assert not os.path.exists(sandbox.socket_path)

    # ... and with the fallback disabled too, it fails with status 3.
    r = sandbox.print_("manual", env=sandbox.env(TOKEND_NO_AUTOSTART="1", TOKEND_NO_FALLBACK="1"))
    assert r.status == 3
    assert r.out == ""
    assert len(r.err_lines) == 1 and "manual" in r.err
    # The line says why no daemon was started: it was not allowed to, it did not fail.
    assert "autostart disabled by TOKEND_NO_AUTOSTART" in r.err and "autostart failed" not in r.err
    assert sandbox.daemon_pids() == []
