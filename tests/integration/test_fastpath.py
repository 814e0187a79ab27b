"""``tokend-print`` against a running daemon: the herd, output formats, flags."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import TOKEND_PRINT, Sandbox


@pytest.mark.timeout(90)
def test_200_concurrent_callers_on_a_cold_profile_make_one_upstream_fetch(sandbox: Sandbox) -> None:
    # The fetch takes a while, so most of the herd arrives while it is in flight.
    up = sandbox.upstream("cold", delay=1.0)
    sandbox.write_config(sandbox.command_profile("cold", up, min_ttl="5s"))
    sandbox.start_daemon()

    # A generous deadline: these tests count fetches and daemons, not latency on a busy machine.
    env = sandbox.env(TOKEND_TIMEOUT="20")
    results = sandbox.run_many([[TOKEND_PRINT, "cold"]] * 200, env=env, timeout=60)

    assert up.fetches == 1, up.lines()
    (token,) = up.tokens()
    failures = [r for r in results if r.status != 0]
    assert not failures, failures[:3]
    assert all(r.out == token + "\n" for r in results), {r.out for r in results}
    assert all(r.err == "" for r in results), {r.err for r in results}
    row = sandbox.profile_status("cold")
    assert row["fetches"] == 1
    assert row["state"] == "fresh"


@pytest.mark.timeout(30)
def test_warm_calls_are_served_from_the_cache(sandbox: Sandbox) -> None:
    up = sandbox.upstream("warm")
    sandbox.write_config(sandbox.command_profile("warm", up, min_ttl="5s"))
    sandbox.start_daemon()
    outs = [sandbox.print_("warm") for _ in range(5)]
    assert [r.status for r in outs] == [0] * 5
    assert {r.out for r in outs} == {up.tokens()[0] + "\n"}
    assert up.fetches == 1
    row = sandbox.profile_status("warm")
    assert row["hits"] == 4 and row["fetches"] == 1


@pytest.mark.timeout(30)
def test_formats(sandbox: Sandbox) -> None:
    up = sandbox.upstream("fmt")
    sandbox.write_config(sandbox.command_profile("fmt", up, min_ttl="5s"))
    sandbox.start_daemon()
    raw = sandbox.print_("fmt")
    token = raw.out.removesuffix("\n")
    assert raw.out == token + "\n" and token == up.tokens()[0]

    header = sandbox.print_("fmt", "--format", "header")
    assert header.status == 0 and header.out == f"Authorization: Bearer {token}\n"

    js = sandbox.print_("fmt", "--format=json")
    assert js.status == 0 and token in json.loads(js.out).values()
    assert up.fetches == 1


@pytest.mark.timeout(30)
def test_refresh_forces_one_new_token_and_is_rate_limited(sandbox: Sandbox) -> None:
    up = sandbox.upstream("rf")
    sandbox.write_config(sandbox.command_profile("rf", up, min_ttl="5s", refresh_limit="30s"))
    sandbox.start_daemon()
    first = sandbox.print_("rf").out
    forced = sandbox.print_("rf", "--refresh")
    assert forced.status == 0
    assert forced.out != first
    assert up.fetches == 2
    # A loop of --refresh (a consumer retrying its 401) does not hammer upstream.
    again = [sandbox.print_("rf", "--refresh") for _ in range(3)]
    assert {r.out for r in again} == {forced.out}
    assert up.fetches == 2
    assert sandbox.print_("rf").out == forced.out
