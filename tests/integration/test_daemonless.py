"""Daemonless mode (CI): ``TOKEND_NO_DAEMON=1`` and ``tokend get --no-daemon``."""

from __future__ import annotations

import os
import time

import pytest

from tests.integration.conftest import TOKEND, TOKEND_PRINT, Sandbox, mode_of


def _assert_private_cache(sandbox: Sandbox) -> None:
    assert mode_of(sandbox.rundir) == 0o700
    cache = sandbox.rundir / "cache"
    assert mode_of(cache) == 0o700
    files = list(cache.iterdir())
    assert any(f.suffix == ".json" for f in files), files
    for f in files:
        assert f.stat().st_uid == os.getuid()
        assert mode_of(f) == 0o600, (f, oct(mode_of(f)))
    assert not any(f.name.startswith(".tmp-") for f in files), "a temp file was left behind"


def _assert_no_daemon(sandbox: Sandbox) -> None:
    assert sandbox.daemon_pids() == []
    assert not os.path.exists(sandbox.socket_path)


@pytest.mark.timeout(90)
def test_50_concurrent_no_daemon_helpers_make_one_fetch(sandbox: Sandbox) -> None:
    up = sandbox.upstream("ci", delay=0.5)
    sandbox.write_config(sandbox.command_profile("ci", up, min_ttl="5s"))
    # A generous deadline: these tests count fetches, not latency on a busy machine.
    env = sandbox.env(TOKEND_NO_DAEMON="1", TOKEND_TIMEOUT="20")
    results = sandbox.run_many([[TOKEND_PRINT, "ci"]] * 50, env=env, timeout=60)
    failures = [r for r in results if r.status != 0]
    assert not failures, failures[:3]
    assert up.fetches == 1, up.lines()
    (token,) = up.tokens()
    assert {r.out for r in results} == {token + "\n"}
    assert all(r.err == "" for r in results)
    _assert_no_daemon(sandbox)
    _assert_private_cache(sandbox)
    # A later process reads the shared cache instead of fetching.
    assert sandbox.print_("ci", env=env).out == token + "\n"
    assert up.fetches == 1


@pytest.mark.timeout(90)
def test_50_concurrent_tokend_get_no_daemon_make_one_fetch(sandbox: Sandbox) -> None:
    up = sandbox.upstream("job", delay=0.5)
    sandbox.write_config(sandbox.command_profile("job", up, min_ttl="5s"))
    env = sandbox.env(TOKEND_TIMEOUT="20")
    results = sandbox.run_many([[TOKEND, "get", "--no-daemon", "job"]] * 50, env=env, timeout=60)
    failures = [r for r in results if r.status != 0]
    assert not failures, failures[:3]
    assert up.fetches == 1, up.lines()
    (token,) = up.tokens()
    assert {r.out for r in results} == {token + "\n"}
    _assert_no_daemon(sandbox)
    _assert_private_cache(sandbox)


@pytest.mark.timeout(30)
def test_daemonless_first_then_daemon_can_start(sandbox: Sandbox) -> None:
    # The runtime dir daemonless mode creates must be one the daemon accepts.
    up = sandbox.upstream("mixed")
    sandbox.write_config(sandbox.command_profile("mixed", up, min_ttl="5s"))
    r = sandbox.print_("mixed", env=sandbox.env(TOKEND_NO_DAEMON="1"))
    assert r.status == 0
    assert mode_of(sandbox.rundir) == 0o700
    sandbox.start_daemon()
    assert sandbox.print_("mixed").status == 0


@pytest.mark.timeout(30)
def test_daemonless_never_serves_a_token_expired_by_wall_clock(sandbox: Sandbox) -> None:
    up = sandbox.upstream("brief", expires_in=8)
    sandbox.write_config(sandbox.command_profile("brief", up, min_ttl="5s"))
    env = sandbox.env(TOKEND_NO_DAEMON="1")
    first = sandbox.print_("brief", env=env)
    assert first.status == 0
    assert sandbox.print_("brief", env=env).out == first.out  # cached
    assert up.fetches == 1
    time.sleep(3.5)  # now 4.5 s left: less than min_ttl
    second = sandbox.print_("brief", env=env)
    assert second.status == 0
    assert second.out != first.out
    assert up.fetches == 2
    # --min-ttl beyond the token's life left forces a fetch too.
    time.sleep(1)  # the second token has about 7 s left, a new one 8 s
    third = sandbox.tokend("get", "--no-daemon", "brief", "--min-ttl", "7.5s")
    assert third.status == 0, third
    assert third.out not in (first.out, second.out)
    assert up.fetches == 3


@pytest.mark.timeout(30)
def test_daemonless_hanging_upstream_fails_within_the_deadline(sandbox: Sandbox) -> None:
    up = sandbox.upstream("hang")
    up.set_mode("hang")
    sandbox.write_config(sandbox.command_profile("hang", up, min_ttl="5s", timeout="20s"))
    r = sandbox.print_("hang", env=sandbox.env(TOKEND_NO_DAEMON="1", TOKEND_TIMEOUT="1"), timeout=25)
    assert r.elapsed < 3.0, r  # the 1 s deadline, with a loaded machine's margin
    assert r.status == 1
    assert r.out == ""
    assert len(r.err_lines) == 1, r.err
    assert r.err.startswith("tokend: hang: ")
    assert sandbox.upstream_pids() == [], "the upstream command outlived the helper"


@pytest.mark.timeout(30)
def test_daemonless_failing_upstream(sandbox: Sandbox) -> None:
    up = sandbox.upstream("nope")
    up.set_mode("fail")
    sandbox.write_config(sandbox.command_profile("nope", up, min_ttl="5s"))
    r = sandbox.tokend("get", "--no-daemon", "nope", env=sandbox.env(TOKEND_TIMEOUT="1"))
    assert r.status == 1
    assert r.out == ""
    assert r.err_lines == [r.err.strip()] and r.err.startswith("tokend: nope: ")
    assert "upstream exploded" in r.err


@pytest.mark.timeout(30)
def test_daemonless_refresh_is_rate_limited_across_processes(sandbox: Sandbox) -> None:
    # Daemonless, the rate limit is the age of the shared cached credential: a
    # forced refresh fetches only when the cached one is older than refresh_limit.
    up = sandbox.upstream("again")
    sandbox.write_config(sandbox.command_profile("again", up, min_ttl="5s", refresh_limit="2s"))
    env = sandbox.env(TOKEND_NO_DAEMON="1")
    first = sandbox.print_("again", env=env).out
    assert sandbox.print_("again", "--refresh", env=env).out == first
    assert up.fetches == 1
    time.sleep(2.1)
    forced = sandbox.print_("again", "--refresh", env=env)
    assert forced.status == 0 and forced.out != first
    assert forced.out == up.tokens()[-1] + "\n"
    assert up.fetches == 2
    loop = [sandbox.print_("again", "--refresh", env=env) for _ in range(3)]
    assert {r.out for r in loop} == {forced.out}
    assert up.fetches == 2
