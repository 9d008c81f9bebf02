"""A burst's timeline: the sustained part and the rate measured over it, the call times noted
from mdsync's own call counter, and the targets judged on it (never on the projection)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdsync.bench.runner import _direction_checks, _measured, _project
from mdsync.bench.stores import store_key
from mdsync.bench.timeline import (
    MIN_WINDOWS,
    WINDOW_SECONDS,
    CallTimes,
    per_second,
    per_window,
    sustained,
    too_short,
)
from mdsync.bench.watch import _narrowed
from shared.calls import CallCounter

times = st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), max_size=300)


@given(times)
def test_landings_per_second_count_every_landing_in_its_second(landed: list[float]) -> None:
    counts = per_second(landed)
    assert sum(counts) == len(landed)
    for second, count in enumerate(counts):
        assert count == sum(1 for t in landed if second <= t < second + 1)


@given(times, st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=10))
def test_calls_per_window_count_each_call_in_its_whole_window(calls: list[float], first: int, n: int) -> None:
    start, end = first * WINDOW_SECONDS, (first + n) * WINDOW_SECONDS
    counts = per_window(calls, start, end)
    assert len(counts) == n
    assert sum(counts) == sum(1 for t in calls if start <= t < end)


@given(st.floats(min_value=50, max_value=2_000), st.floats(min_value=0.1, max_value=400))
def test_an_even_burst_is_measured_at_its_rate_over_whole_windows(rate: float, seconds: float) -> None:
    landed = [i / rate for i in range(math.ceil(rate * seconds))]
    part = sustained(landed, [], ceiling=rate)
    whole_windows = math.floor(max(landed) / WINDOW_SECONDS) - 1
    if whole_windows < MIN_WINDOWS:
        assert part is None  # too short: not measured, rather than something else
        return
    assert part is not None
    assert part.start == WINDOW_SECONDS  # the first window, where an idle budget helps, left out
    assert part.end <= max(landed)  # the tail left out
    assert (part.end - part.start) / WINDOW_SECONDS == whole_windows
    assert part.changes_per_second == pytest.approx(rate, rel=0.01)
    assert part.fraction_of_ceiling == pytest.approx(1.0, rel=0.01)


def test_a_fast_start_and_a_slow_tail_do_not_count() -> None:
    # 1,000 at once, then 100 a second for 100 s, then a trickle.
    landed = [0.5] * 1_000 + [20 + i / 100 for i in range(10_000)] + [125.0, 130.0]
    calls = [20 + i * 0.25 for i in range(400)]  # 80 per window
    part = sustained(landed, calls, ceiling=200)
    assert part is not None
    assert (part.start, part.end) == (20, 120)
    assert part.changes_per_second == pytest.approx(100)
    assert part.fraction_of_ceiling == pytest.approx(0.5)
    assert part.marketo_calls_per_window == [80] * 5


def test_call_times_are_when_each_request_was_sent_not_counting_the_identity_call() -> None:
    counter = CallCounter(uncounted=["GET /identity/oauth/token"])
    with CallTimes(counter) as noted:
        counter.record("GET /identity/oauth/token", 0.0)
        counter.record("GET /rest/v1/leads.json", 0.0)
        counter.record("POST /rest/v1/leads.json", 0.0)
    counter.record("GET /rest/v1/leads.json", 0.0)  # after the block: not noted
    assert len(noted.since(0.0)) == 2
    assert counter.total == 3


def _store_burst(changes_per_second: float, timeline_sustained: dict[str, float] | None) -> dict[str, Any]:
    return {
        "changes_per_second": changes_per_second,
        "marketo_calls_per_change": 0.0103,
        "dataverse_calls_per_change": 0.005,
        "worker_marketo_calls_per_20s": 95,
        "timeline": {"sustained": timeline_sustained},
    }


def test_the_ceiling_target_is_judged_on_the_measured_rate_and_never_falls_back() -> None:
    key = store_key("burst_to_marketo", "sqlite")
    measured = {"changes_per_second": 460.0, "fraction_of_ceiling": 0.92}
    workloads = {
        key: _store_burst(1_400, measured),
        store_key("burst_to_marketo", "table"): _store_burst(1_400, None),
    }
    _project(workloads)
    _measured(workloads)
    checks = {c.name: c for c in _direction_checks(workloads)}
    on_sqlite = checks["Dynamics -> Marketo burst, whole API, sqlite state: measured sustained / API ceiling"]
    assert (on_sqlite.measured, on_sqlite.met) == (0.92, True)
    # The projection (the short burst's calls per change at the client's rate) would meet it.
    assert workloads[store_key("burst_to_marketo", "table")]["projected_fraction_of_ceiling"] > 0.9
    on_table = checks["Dynamics -> Marketo burst, whole API, table state: measured sustained / API ceiling"]
    assert (on_table.measured, on_table.met, on_table.note) == (None, None, too_short())


def test_ours_against_the_peer_is_measured_against_measured() -> None:
    ours = _store_burst(1_400, {"changes_per_second": 460.0, "fraction_of_ceiling": 0.92})
    peer = _store_burst(700, {"changes_per_second": 400.0, "fraction_of_ceiling": 0.8})
    workloads = {store_key("burst_to_marketo", "sqlite"): ours, "peer_to_marketo": peer}
    _project(workloads)
    _measured(workloads)
    check = next(c for c in _direction_checks(workloads) if "batching peer" in c.name)
    assert check.measured == pytest.approx(460 / 400)
    assert check.met is False


@given(
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=10),
    st.one_of(st.none(), st.floats(min_value=-5, max_value=115)),
)
def test_a_landing_is_placed_within_what_the_checks_and_the_record_stamp_allow(
    after: float, period: float, modified: float | None
) -> None:
    before = after + period
    moment = _narrowed(after, before, modified)
    assert after <= moment <= before
    if modified is not None and modified < before and modified + 1 > after:
        assert modified <= moment <= modified + 1
