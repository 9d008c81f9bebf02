"""Percentiles as the bench reports them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdsync.bench.stats import latency_summary, per, percentile, quantile_points

samples = st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=200)


@given(samples)
def test_percentiles_are_ordered_and_within_the_samples(values: list[float]) -> None:
    ranks = [percentile(values, q) for q in (50, 95, 99)]
    known = [r for r in ranks if r is not None]
    assert len(known) == 3
    bounded = [min(values), *known, max(values)]
    assert bounded == sorted(bounded)
    assert percentile(values, 0) == min(values)
    assert percentile(values, 100) == max(values)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([], 50) is None


def test_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.1, 0.2, 0.3])
    assert summary == {
        "count": 3,
        "p50_ms": 200.0,
        "p95_ms": 290.0,
        "p99_ms": 298.0,
        "max_ms": 300.0,
        "samples_ms": [100.0, 200.0, 300.0],
    }
    assert latency_summary([])["p50_ms"] is None
    assert per(3, 0) is None


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=500), st.integers(2, 50))
def test_quantile_points_keep_the_distribution_within_bounds(values: list[float], at_most: int) -> None:
    points = quantile_points(values, at_most)
    assert points == sorted(points)
    assert len(points) == min(len(values), at_most)
    if values:
        assert (points[0], points[-1]) == (min(values), max(values))
    # every point is one of the values, taken no more often than it occurs
    remaining = sorted(values)
    for point in points:
        remaining.remove(point)
