"""Percentiles and rates, the way the bench reports them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# The latency samples kept in the results: enough quantile points to draw a distribution, few
# enough that bench/results.json stays small whatever the workload's size.
SAMPLE_POINTS = 1000


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between the closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def quantile_points(values: Sequence[float], at_most: int = SAMPLE_POINTS) -> list[float]:
    """The sorted values, or ``at_most`` of them evenly spaced in rank (the least and the
    greatest always among them): the distribution drawn from a bounded number of points."""
    ordered = sorted(values)
    if len(ordered) <= at_most:
        return ordered
    last = len(ordered) - 1
    return [ordered[round(i * last / (at_most - 1))] for i in range(at_most)]


def latency_summary(values: Sequence[float]) -> dict[str, Any]:
    """Count, p50/p95/p99/max and the distribution's quantile points (``samples_ms``, see
    quantile_points), in milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values) if values else None),
        "samples_ms": [round(v * 1000, 1) for v in quantile_points(values)],
    }


def per(count: float, total: float) -> float | None:
    return None if total == 0 else count / total
