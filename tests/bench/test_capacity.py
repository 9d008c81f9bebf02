"""The bench's arithmetic: the API ceiling, the sustained rate, the daily capacity model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mdsync.bench import capacity as cap
from shared.config import Settings
from shared.pacing import PacingPolicy

ROOT = Path(__file__).resolve().parents[2]
LIMITS = cap.ApiLimits()


def test_ceilings_follow_from_the_documented_limits() -> None:
    # Marketo: 5 calls a second; from Dynamics a change costs a read, a write and the echo
    # page (3/300), from Marketo an activity page (1/300: its activities carry the values).
    to_marketo = cap.ceiling(LIMITS, "to_marketo")
    to_dynamics = cap.ceiling(LIMITS, "to_dynamics")
    assert to_marketo.changes_per_second == pytest.approx(500)
    assert to_dynamics.changes_per_second == pytest.approx(1500)
    assert to_marketo.bound_by == to_dynamics.bound_by == "marketo"
    assert cap.ceiling(LIMITS, "to_marketo", echo=False).changes_per_second == pytest.approx(750)


@given(st.floats(min_value=0.01, max_value=1.0))
def test_a_share_of_marketo_scales_the_ceiling_until_dataverse_binds(share: float) -> None:
    for direction in ("to_marketo", "to_dynamics"):
        full = cap.ceiling(LIMITS, direction)
        part = cap.ceiling(LIMITS, direction, marketo_share=share)
        dataverse_bound = LIMITS.dataverse_rate / part.dataverse_calls_per_change
        assert part.changes_per_second == pytest.approx(min(full.changes_per_second * share, dataverse_bound))


@given(
    measured=st.floats(min_value=0.1, max_value=1e6),
    marketo=st.floats(min_value=1e-4, max_value=10),
    dataverse=st.floats(min_value=1e-4, max_value=10),
)
def test_sustained_is_the_least_of_what_was_measured_and_what_each_rate_allows(
    measured: float, marketo: float, dataverse: float
) -> None:
    rate = cap.sustained(measured, marketo, dataverse, marketo_rate=5, dataverse_rate=20)
    assert rate == min(measured, 5 / marketo, 20 / dataverse)
    # A workload that made no calls on one side is bound by the other side only.
    assert cap.sustained(measured, marketo, None, marketo_rate=5, dataverse_rate=20) == min(
        measured, 5 / marketo
    )


@given(st.floats(min_value=0, max_value=10_000))
def test_a_webhook_batch_holds_at_least_one_notice_and_at_most_the_minimum(rate: float) -> None:
    batch = cap.webhook_batch(rate, cap.Deployment())
    assert 1 <= batch <= cap.Deployment().min_batch


def test_the_model_uses_the_shipped_poll_settings() -> None:
    fields = Settings.model_fields
    deployment = cap.Deployment()
    assert deployment.deletes_seconds == fields["marketo_deletes_poll_seconds"].default
    assert fields["marketo_poll_schedule"].default == "0 */1 * * * *"  # every 60 s
    assert deployment.poll_seconds == 60
    # Nothing changes: a lead-change page per run every minute, a deleted-leads page and a
    # merges page every five.
    idle = cap.capacity(0)
    assert idle.marketo_calls_per_day == 1_440 + 2 * 288


def test_the_model_uses_the_batch_window_host_json_ships() -> None:
    service_bus = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["serviceBus"]
    hours, minutes, seconds = service_bus["maxBatchWaitTime"].split(":")
    deployment = cap.Deployment()
    assert deployment.min_batch == service_bus["minMessageBatchSize"]
    assert deployment.batch_wait_seconds == int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    # Batches that are whole multiples of Marketo's 300 waste no read or write.
    assert service_bus["maxMessageBatchSize"] % LIMITS.marketo_batch == 0
    assert service_bus["minMessageBatchSize"] % LIMITS.marketo_batch == 0


@given(st.integers(min_value=1, max_value=5_000_000), st.floats(min_value=0, max_value=1))
def test_more_changes_never_cost_fewer_calls(changes: int, share: float) -> None:
    fewer = cap.capacity(changes, to_marketo_share=share)
    more = cap.capacity(changes * 2, to_marketo_share=share)
    assert more.marketo_calls_per_day >= fewer.marketo_calls_per_day
    assert more.dataverse_requests_per_day >= fewer.dataverse_requests_per_day
    assert math.isclose(fewer.marketo_quota_used, fewer.marketo_calls_per_day / LIMITS.marketo_daily_quota)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_changes_within_quota_is_where_the_quota_runs_out(share: float) -> None:
    most = cap.changes_within_quota(share)
    assert cap.capacity(most, to_marketo_share=share).marketo_quota_used <= 1.0
    assert cap.capacity(most + 2_000, to_marketo_share=share).marketo_quota_used > 1.0


# --- with the batching window (shared/pacing.py) -------------------------------------------------


def test_the_paced_model_uses_the_shipped_budget() -> None:
    settings = Settings.model_construct()  # the defaults, without reading any environment
    assert settings.sync_daily_budget == cap.SHIPPED_DAILY_BUDGET


@given(st.integers(min_value=0, max_value=1_000_000), st.floats(min_value=0, max_value=1))
def test_a_million_evenly_arriving_changes_a_day_stay_within_the_budget(changes: int, share: float) -> None:
    """The capacity target, from either side: the projected day's Marketo calls stay within the
    sync's daily budget (the quota less the flow step's and other integrations' shares)."""
    day = cap.paced_day(changes, to_marketo_share=share)
    assert day.within_budget, day
    without = cap.capacity(changes, to_marketo_share=share)
    assert day.marketo_calls_per_day <= max(without.marketo_calls_per_day, cap.SHIPPED_DAILY_BUDGET)


@given(st.integers(min_value=0, max_value=30_000), st.floats(min_value=0, max_value=1))
def test_with_ample_quota_no_window_opens(changes: int, share: float) -> None:
    """A day whose calls stay within the ample share of the budget never waits: evenly arriving,
    they never run ahead of the pro-rata line."""
    without = cap.capacity(changes, to_marketo_share=share)
    assume(
        without.marketo_calls_per_day
        <= PacingPolicy(cap.SHIPPED_DAILY_BUDGET).ample * cap.SHIPPED_DAILY_BUDGET
    )
    day = cap.paced_day(changes, to_marketo_share=share)
    assert day.paced_share_of_day == 0
    assert day.marketo_calls_per_day == pytest.approx(without.marketo_calls_per_day)


def test_without_the_window_a_million_from_dynamics_would_not_fit() -> None:
    assert cap.capacity(1_000_000, to_marketo_share=1.0).marketo_quota_used > 1.0
    assert cap.changes_within_budget_paced(1.0) > 1_000_000
