"""The batching window's rule (shared/pacing.py): pure, so its properties hold for all inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.pacing import SECONDS_PER_DAY, PacingPolicy, Spend, boundary, decide, window

POLICY = PacingPolicy(30_000.0)

budgets = st.floats(min_value=14_000, max_value=1_000_000)
elapsed = st.floats(min_value=0, max_value=SECONDS_PER_DAY)
day_lengths = st.sampled_from([SECONDS_PER_DAY - 3600, SECONDS_PER_DAY, SECONDS_PER_DAY + 3600])
small_batches = st.integers(min_value=1, max_value=299)


def ample_line(policy: PacingPolicy, spend: Spend) -> float:
    share_of_day = min(1.0, (spend.elapsed + policy.head_start) / spend.day_length)
    return policy.ample * policy.daily_budget * share_of_day


@given(budgets, elapsed, day_lengths, st.floats(min_value=0, max_value=0.999), small_batches)
def test_with_ample_quota_a_batch_never_waits(
    budget: float, at: float, day: float, part: float, size: int
) -> None:
    policy = PacingPolicy(budget)
    spend = Spend(0, min(at, day), day)
    spend = Spend(part * ample_line(policy, spend), spend.elapsed, day)
    assert decide(policy, spend, size, waited=False) == 0


@given(budgets, elapsed, st.floats(min_value=0, max_value=2), small_batches)
def test_a_window_is_on_the_ladder_and_never_longer_than_the_longest(
    budget: float, at: float, part: float, size: int
) -> None:
    policy = PacingPolicy(budget, max_window=300)
    seconds = decide(policy, Spend(part * budget, at), size, waited=False)
    assert seconds == 0 or math.log2(seconds / policy.base_window).is_integer()
    assert seconds <= policy.longest == 256


@given(budgets, elapsed, st.floats(min_value=0, max_value=2), st.floats(min_value=0, max_value=2))
def test_the_more_the_day_has_spent_the_longer_the_window(
    budget: float, at: float, a: float, b: float
) -> None:
    policy = PacingPolicy(budget)
    low, high = sorted((a * budget, b * budget))
    assert window(policy, Spend(low, at)) <= window(policy, Spend(high, at))


@given(elapsed, st.floats(min_value=0, max_value=3), st.integers(min_value=300, max_value=5000))
def test_a_full_batch_is_processed_whatever_the_spend(at: float, part: float, size: int) -> None:
    assert decide(POLICY, Spend(part * POLICY.daily_budget, at), size, waited=False) == 0


@given(elapsed, st.floats(min_value=0, max_value=3), small_batches)
def test_a_batch_that_waited_once_is_processed_whatever_the_spend(at: float, part: float, size: int) -> None:
    assert decide(POLICY, Spend(part * POLICY.daily_budget, at), size, waited=True) == 0


@given(budgets, elapsed, st.floats(min_value=0, max_value=1))
def test_a_paced_window_leaves_the_rest_of_the_day_within_the_budget(
    budget: float, at: float, part: float
) -> None:
    """Whatever the arrival rate, one small batch per window: the window's calls for the rest of
    the day plus the reserve fit what remains, unless the longest window is all that is left."""
    policy = PacingPolicy(budget)
    spend = Spend(part * budget, at)
    seconds = window(policy, spend)
    if seconds in (0, policy.longest):
        return
    left = max(SECONDS_PER_DAY - at, 1.0)
    windows = policy.calls_per_invocation * left / seconds
    projected = spend.calls + windows + policy.reserve * left / SECONDS_PER_DAY
    assert projected <= budget * (1 + 1e-9)


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from([2.0, 4.0, 8.0, 64.0, 512.0]))
def test_notices_deferred_into_one_window_come_back_at_one_boundary(now: float, seconds: float) -> None:
    at = boundary(now, seconds)
    assert now < at <= now + seconds
    assert at % seconds == 0
    # the boundaries of a longer window are boundaries of every shorter one on the ladder
    assert at % 2.0 == 0


def test_a_quiet_morning_waits_nothing_and_an_overspent_one_waits_long() -> None:
    early = Spend(1_000, 3 * 3600)
    assert window(POLICY, early) == 0
    assert window(POLICY, Spend(10_000, 3 * 3600)) == 32  # a third of the day's calls in 3 hours
    assert window(POLICY, Spend(25_000, 3 * 3600)) == POLICY.longest == 512
    # on the pro-rata line past the ample share: paced, seconds not minutes
    noon = Spend(POLICY.daily_budget / 2, SECONDS_PER_DAY / 2)
    assert 2 < window(POLICY, noon) <= 32


def test_a_budget_too_small_for_the_reserve_is_refused() -> None:
    PacingPolicy(30_000).check()
    with pytest.raises(ValueError, match="cannot pace the sync"):
        PacingPolicy(10_000).check()
