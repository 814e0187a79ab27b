"""``Broker.request``: the one request path's decisions, for the daemon and daemonless callers alike."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from tests.core.test_broker import HOUR, Harness, h, harness, token  # noqa: F401  (h, harness: fixtures)
from tokend.core.answers import MAX_EXPIRY, BadAnswer
from tokend.core.credential import Credential
from tokend.core.durations import MAX_DURATION, parse_duration
from tokend.core.errors import REDACTOR, SourceError, UsageError, scrub

# -- new, old or error -----------------------------------------------------------------------------


def test_a_failed_forced_refresh_serves_the_still_valid_old_credential(h: Harness) -> None:
    old = h.broker.get("p")
    h.clock.advance(60)
    h.sources["p"].error = SourceError("upstream is down")
    assert h.broker.get("p", force=True) is old
    assert h.sources.calls("p") == 2
    assert h.row("p")["last_error"] == "upstream is down"


def test_a_refreshed_credential_too_short_for_the_caller_falls_back_to_the_old_one(h: Harness) -> None:
    old = h.broker.get("p")
    h.clock.advance(60)
    h.sources["p"].life = 200.0  # below the profile's 300 s min_ttl: a bad answer
    assert h.broker.get("p", force=True) is old


def test_the_old_credential_is_not_served_once_it_no_longer_meets_min_ttl(h: Harness) -> None:
    h.broker.get("p")
    h.clock.advance(HOUR - 200)  # 200 s left: below the 300 s min_ttl
    h.sources["p"].error = SourceError("upstream is down")
    with pytest.raises(SourceError, match="upstream is down"):
        h.broker.get("p")


def test_the_awaitable_serves_the_daemon_the_same_decision(h: Harness) -> None:
    old = h.broker.get("p")
    h.clock.advance(60)
    h.sources["p"].error = SourceError("upstream is down")
    pending = h.broker.request("p", force=True)
    assert not isinstance(pending, Credential)

    async def wait() -> Credential:
        return await pending

    assert asyncio.run(wait()) is old


# -- the effective min_ttl ---------------------------------------------------------------------------


def test_the_aws_process_floor_applies_to_every_request(harness: Callable[..., Harness]) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "1h"\n')
    first = h.broker.get("p", fmt="aws-process")
    h.clock.advance(HOUR - 15 * 60)  # 15 minutes left: fine for raw, not for credential_process (16 min)
    h.executor.hold = True
    assert h.lookup_cached("p") is first
    pending = h.broker.request("p", fmt="aws-process")
    assert not isinstance(pending, Credential)  # waits for a new one instead
    h.executor.run_pending()

    async def wait() -> Credential:
        return await pending

    renewed = asyncio.run(wait())
    assert renewed is not first and renewed.expires_at == h.clock() + HOUR


def test_an_unknown_format_is_a_usage_error_before_any_fetch(h: Harness) -> None:
    with pytest.raises(UsageError, match="unknown format"):
        h.broker.request("p", fmt="yaml")
    assert h.sources.calls("p") == 0


@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, MAX_DURATION + 1, 1e400])
def test_min_ttl_must_be_finite_and_bounded(h: Harness, value: float) -> None:
    with pytest.raises(UsageError, match="--min-ttl must be between"):
        h.broker.request("p", min_ttl=value)
    assert h.sources.calls("p") == 0


@pytest.mark.parametrize("text", ["9" * 400, "31d", "1e999s", "720h1s"])
def test_durations_beyond_the_maximum_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_longest_duration_is_accepted() -> None:
    assert parse_duration("30d") == MAX_DURATION


# -- bad upstream answers ------------------------------------------------------------------------------



@pytest.mark.parametrize("expires", [math.nan, math.inf, -math.inf, 1e300, "past"])
def test_bad_expiries_are_one_error_and_held_not_refetched(h: Harness, expires: Any) -> None:
    src_calls: list[int] = []

    def odd(profile: Any, clock: Callable[[], float]) -> Any:
        src = h.sources(profile, clock)
        real = src.fetch

        def fetch(request: Any) -> Credential:
            cred = real(request)
            src_calls.append(1)
            at = clock() - 10 if expires == "past" else expires
            return Credential.bearer(token(cred), expires_at=at, issued_at=clock())

        src.fetch = fetch  # type: ignore[method-assign]
        return src

    h.broker._make_source = odd
    for _ in range(20):
        with pytest.raises(BadAnswer):
            h.broker.get("p")
    assert len(src_calls) == 1  # held for the backoff: not a fetch per caller
    row = h.row("p")
    assert row["state"] == "error" and row["last_error"]
    assert row["next_refresh"] is None or math.isfinite(row["next_refresh"])
    h.clock.advance(3)  # the first backoff is at most 2 s: asked again
    with pytest.raises(BadAnswer):
        h.broker.get("p")
    assert len(src_calls) == 2


def test_an_expiry_within_ten_years_is_accepted(h: Harness) -> None:
    h.sources.preset("p", life=MAX_EXPIRY - 60)
    assert h.broker.get("p").expires_at is not None


def test_a_credential_born_below_min_ttl_is_held_and_explained(h: Harness) -> None:
    h.sources.preset("p", life=60.0)  # the default min_ttl is 5m
    for _ in range(20):
        with pytest.raises(SourceError, match="min_ttl"):
            h.broker.get("p")
    assert h.sources.calls("p") == 1
    assert "min_ttl" in h.row("p")["last_error"]


# -- demands the source cannot meet ------------------------------------------------------------------


def test_a_min_ttl_the_source_cannot_meet_reaches_upstream_once_per_refresh_limit(
    harness: Callable[..., Harness],
) -> None:
    h = harness('[profiles.p]\nsource = "demo"\nlifetime = "50m"\n')
    for _ in range(20):
        with pytest.raises(SourceError, match="2h00m"):
            h.broker.get("p", min_ttl=2 * HOUR)
    assert h.sources.calls("p") == 1
    # the profile's own callers are served from the same cache meanwhile
    assert isinstance(h.broker.get("p"), Credential)
    assert h.sources.calls("p") == 1
    h.clock.advance(31)
    with pytest.raises(SourceError):
        h.broker.get("p", min_ttl=2 * HOUR)
    assert h.sources.calls("p") == 2


# -- redaction follows what is cached -----------------------------------------------------------------


def test_a_value_two_profiles_serve_stays_redacted_until_both_let_go(h: Harness) -> None:
    shared = "shared-secret-value-1234"
    REDACTOR.add([shared])  # profile p's copy
    REDACTOR.add([shared])  # profile q's copy
    REDACTOR.discard([shared])  # p dropped
    assert scrub(f"echo {shared}") == "echo ***"
    REDACTOR.discard([shared])
    assert scrub(f"echo {shared}") == f"echo {shared}"


def test_dropping_one_of_two_profiles_with_the_same_value_keeps_it_redacted(
    harness: Callable[..., Harness],
) -> None:
    h = harness('[profiles.a]\nsource = "demo"\n[profiles.b]\nsource = "demo"\n')
    same = "the-same-value-in-two-places"
    for name in ("a", "b"):

        def fixed(request: Any, name: str = name) -> Credential:
            return Credential.secret(same, issued_at=h.clock())

        h.broker.lookup(name)  # makes the entry
        h.executor.drain()
        h.sources[name].fetch = fixed  # type: ignore[method-assign]
        h.broker.get(name, force=True)
    h.broker.forget("a")
    assert same not in scrub(f"upstream said {same}")
    h.broker.forget("b")
    assert same in scrub(f"upstream said {same}")


def test_short_values_are_not_redacted() -> None:
    REDACTOR.add(["/usr"])
    try:
        assert scrub("/usr/bin/env") == "/usr/bin/env"
    finally:
        REDACTOR.discard(["/usr"])


def test_credentials_loaded_from_the_shared_cache_are_redacted(
    harness: Callable[..., Harness], short_tmp: str
) -> None:
    from tokend.core.localcache import LocalCache

    writer = harness(store=LocalCache(short_tmp))
    value = token(writer.broker.get("p"))
    writer.close()
    assert value in scrub(value)  # nothing holds it any more
    reader = harness(store=LocalCache(short_tmp))
    assert token(reader.broker.get("p")) == value  # from the file, no fetch
    assert reader.sources.calls("p") == 0
    assert value not in scrub(f"an upstream echoed {value}")


def test_a_refresh_after_a_demand_beyond_min_ttl_still_reaches_upstream(h: Harness) -> None:
    # --min-ttl 10m on a cold cache, then a 401 seconds later: --refresh is not rate-limited by the demand
    first = h.broker.get("p", min_ttl=600)
    h.clock.advance(5)
    renewed = h.broker.get("p", force=True)
    assert renewed is not first
    assert h.sources.calls("p") == 2
