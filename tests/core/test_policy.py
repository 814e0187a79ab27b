"""Refresh windows: staleness, refresh times, jitter, backoff."""

from __future__ import annotations

import random

import pytest

from tokend.core import policy
from tokend.core.credential import Credential
from tokend.core.policy import State

T0 = 1_700_000_000.0
HOUR = 3600.0


def bearer(life: float | None, *, refresh_at: float | None = None, issued_at: float = T0) -> Credential:
    return Credential.bearer(
        "policy-test-token",
        expires_at=None if life is None else issued_at + life,
        refresh_at=refresh_at,
        issued_at=issued_at,
    )


# -- state -----------------------------------------------------------------------


def test_state_boundaries_with_default_min_ttl() -> None:
    cred = bearer(HOUR)  # due at 2/3 of the life: T0 + 40 min
    assert policy.state(cred, T0) is State.FRESH
    assert policy.state(cred, T0 + 2400 - 0.001) is State.FRESH
    assert policy.state(cred, T0 + 2400) is State.STALE
    assert policy.state(cred, T0 + HOUR - 300 - 0.001) is State.STALE
    # exactly min_ttl left is not enough: never hand out min_ttl or less
    assert policy.state(cred, T0 + HOUR - 300) is State.EXPIRED
    assert policy.state(cred, T0 + HOUR) is State.EXPIRED
    assert policy.state(cred, T0 + 10 * HOUR) is State.EXPIRED


@pytest.mark.parametrize(
    ("min_ttl", "at", "expected"),
    [
        (0.0, HOUR - 0.001, State.STALE),
        (0.0, HOUR, State.EXPIRED),
        (1800.0, 1799.0, State.FRESH),
        (1800.0, 1800.0, State.EXPIRED),  # a large min_ttl expires a credential that is not yet stale
        (3599.0, 0.5, State.FRESH),
        (3600.0, 0.0, State.EXPIRED),
        (7200.0, 0.0, State.EXPIRED),
    ],
)
def test_state_with_min_ttl(min_ttl: float, at: float, expected: State) -> None:
    assert policy.state(bearer(HOUR), T0 + at, min_ttl) is expected


def test_state_of_credential_without_expiry() -> None:
    forever = bearer(None)
    assert policy.state(forever, T0 + 100 * 365 * 86400, 10 * HOUR) is State.FRESH
    hinted = bearer(None, refresh_at=T0 + HOUR)
    assert policy.state(hinted, T0 + HOUR - 1) is State.FRESH
    assert policy.state(hinted, T0 + HOUR) is State.STALE  # re-read, never expired


def test_state_after_clock_goes_backwards() -> None:
    # A clock set back must not make anything EXPIRED or STALE that is not.
    assert policy.state(bearer(HOUR), T0 - HOUR) is State.FRESH


# -- refresh_due -----------------------------------------------------------------


def test_refresh_at_hint_wins() -> None:
    cred = bearer(HOUR, refresh_at=T0 + 600)
    assert policy.refresh_due(cred) == T0 + 600
    assert policy.state(cred, T0 + 600) is State.STALE


def test_refresh_due_one_hour_is_two_thirds() -> None:
    assert policy.refresh_due(bearer(HOUR)) == pytest.approx(T0 + 2400)


def test_refresh_due_twelve_hours_is_two_thirds() -> None:
    # 2/3 of 12 h (8 h) is earlier than expires_at - 10 min
    assert policy.refresh_due(bearer(12 * HOUR)) == pytest.approx(T0 + 8 * HOUR)


def test_refresh_due_fifteen_minutes_uses_the_margin_but_not_before_half() -> None:
    # 2/3 = 10 min, expiry - 10 min = 5 min, but never before half the life (7.5 min)
    assert policy.refresh_due(bearer(900)) == pytest.approx(T0 + 450)


def test_refresh_due_twenty_minutes_uses_the_margin() -> None:
    # 2/3 = 13m20s; expiry - 10 min = 10 min (and 10 min is not before half the life)
    assert policy.refresh_due(bearer(1200)) == pytest.approx(T0 + 600)


def test_refresh_due_sixty_seconds_is_half_the_life() -> None:
    assert policy.refresh_due(bearer(60)) == pytest.approx(T0 + 30)


def test_refresh_due_never_for_static_credentials() -> None:
    assert policy.refresh_due(bearer(None)) is None


def test_refresh_due_is_always_before_expiry() -> None:
    for life in (1, 10, 60, 300, 599, 600, 601, 900, HOUR, 12 * HOUR, 7 * 86400):
        due = policy.refresh_due(bearer(life))
        assert due is not None
        assert T0 < due < T0 + life, life


# -- next_refresh ------------------------------------------------------------------


def test_next_refresh_jitter_within_bounds() -> None:
    rng = random.Random(1234)
    cred = bearer(HOUR)
    times = [policy.next_refresh(cred, T0, 300.0, rng) for _ in range(500)]
    jitter = HOUR * policy.JITTER_FRACTION
    assert all(t is not None for t in times)
    values = [t for t in times if t is not None]
    assert min(values) >= T0 + 2400 - jitter
    assert max(values) <= T0 + 2400
    assert max(values) - min(values) > jitter / 2  # it does spread
    assert all(v < T0 + HOUR - 300 for v in values)


def test_next_refresh_is_deterministic_for_a_seed() -> None:
    cred = bearer(HOUR)
    a = [policy.next_refresh(cred, T0, 300.0, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]


def test_next_refresh_before_min_ttl_window() -> None:
    # with a min_ttl of 5 h, a 12 h credential must be replaced before 7 h, not at 8 h
    cred = bearer(12 * HOUR)
    min_ttl = 5 * HOUR
    rng = random.Random(99)
    for _ in range(200):
        t = policy.next_refresh(cred, T0, min_ttl, rng)
        assert t is not None
        assert t < T0 + 12 * HOUR - min_ttl
        assert t >= T0 + policy.MIN_REFRESH_DELAY
        # so the credential is still servable (not EXPIRED) at the refresh time
        assert policy.state(cred, t, min_ttl) is not State.EXPIRED


def test_next_refresh_never_in_the_past() -> None:
    cred = bearer(HOUR)
    late = T0 + 3000  # already past the due time
    t = policy.next_refresh(cred, late, 300.0, random.Random(1))
    assert t == late + policy.MIN_REFRESH_DELAY


def test_next_refresh_with_hint_and_without_expiry() -> None:
    rng = random.Random(5)
    assert policy.next_refresh(bearer(None, refresh_at=T0 + HOUR), T0, 300.0, rng) == T0 + HOUR
    assert policy.next_refresh(bearer(None), T0, 300.0, rng) is None


def test_next_refresh_short_life() -> None:
    cred = bearer(60)
    rng = random.Random(3)
    for _ in range(100):
        t = policy.next_refresh(cred, T0, 10.0, rng)
        assert t is not None
        assert T0 + 1 <= t <= T0 + 30
        assert t < T0 + 60 - 10


# -- backoff ------------------------------------------------------------------------


def test_backoff_grows_exponentially_and_is_capped() -> None:
    rng = random.Random(42)
    expected = [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0, 300.0]
    for failures, ceiling in enumerate(expected, start=1):
        for _ in range(50):
            d = policy.backoff(failures, rng)
            assert ceiling / 2 <= d <= ceiling, (failures, d)


def test_backoff_cap() -> None:
    rng = random.Random(0)
    values = [policy.backoff(n, rng) for n in range(9, 200)]
    assert max(values) <= policy.BACKOFF_MAX == 300.0
    assert min(values) >= policy.BACKOFF_MAX / 2


def test_backoff_is_jittered() -> None:
    rng = random.Random(11)
    values = {policy.backoff(5, rng) for _ in range(20)}
    assert len(values) > 10


def test_backoff_for_zero_failures_is_the_base() -> None:
    assert 1.0 <= policy.backoff(0, random.Random(0)) <= 2.0


def test_next_refresh_none_for_credential_born_below_min_ttl() -> None:
    # refreshing would only yield another credential that is too short: no loop on upstream
    rng = random.Random(8)
    assert policy.next_refresh(bearer(200), T0, 300.0, rng) is None
    assert policy.next_refresh(bearer(301), T0, 300.0, rng) is None
    assert policy.next_refresh(bearer(HOUR), T0 + HOUR - 300, 300.0, rng) is None
    assert policy.next_refresh(bearer(400), T0, 300.0, rng) is not None
