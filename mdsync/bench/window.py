"""The batching window measured: changes arriving evenly at a million a day, with the window off
and with it open, against the simulators.

Both runs are the steady mix (45 % edits in Dynamics, 45 % in Marketo, 10 % new leads) at
1,000,000 / 86,400 = 11.6 changes a second for a few minutes, the poller at its shipped 60 s.
With the window on, the budget is set just above the day's spend so far, which makes the pacer
hold every small batch for the longest window, ``WINDOW_SECONDS``: the window the capacity
model's paced day reaches at a million changes a day (``capacity.paced_day``). The Marketo
calls per change measured at that arrival rate, times a million, are the day's calls the
system would spend: a **projection** from minutes to a day, next to the model's own figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mdsync.bench import capacity as cap
from mdsync.bench.config import SHIPPED_POLL_SECONDS
from mdsync.bench.seed import Pair
from mdsync.bench.workloads import WorkloadResult, steady
from mdsync.harness import LocalSystem
from shared.console.budgets import marketo_calls_today, marketo_day_start

MILLION_A_DAY = 1_000_000 / cap.SECONDS_PER_DAY
WINDOW_SECONDS = 16
OFF, ON = "even_window_off", "even_window_on"


def spent_today(system: LocalSystem) -> int:
    now = datetime.now(UTC)
    return marketo_calls_today(system.deps.operations.read_tallies(marketo_day_start(now)), now)


def evenly(
    system: LocalSystem, pairs: Sequence[Pair], tag: str, *, seconds: float, window: bool
) -> WorkloadResult:
    """The steady mix at a million changes a day, the batching window off or held open."""
    if window:
        overrides = {
            "MDSYNC_BATCH_WINDOW": "true",
            "MDSYNC_MARKETO_DAILY_BUDGET": str(spent_today(system) + 1),
            "MDSYNC_BATCH_WINDOW_MAX_SECONDS": str(WINDOW_SECONDS),
        }
    else:
        overrides = {"MDSYNC_BATCH_WINDOW": "false"}
    with system.settings_changed(overrides):
        result = steady(
            system, pairs, tag, rate=MILLION_A_DAY, seconds=seconds, poll_seconds=SHIPPED_POLL_SECONDS
        )
    result.extra["batching_window_seconds"] = WINDOW_SECONDS if window else 0
    return result


def projection(workloads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Measured calls per change with the window off and on, the day's calls they project at a
    million changes a day, and what the model says for the same day."""
    found: dict[str, Any] = {}
    for key in (OFF, ON):
        workload = workloads.get(key)
        if workload is None:
            continue
        per_change = workload["marketo_calls_per_change"] or 0.0
        found[key] = {
            "changes": workload["changes"],
            "marketo_calls_per_change": per_change,
            "projected_marketo_calls_per_day_at_1m": per_change * 1_000_000,
            "projected_changes_per_day_within_budget": (
                int(cap.SHIPPED_DAILY_BUDGET / per_change) if per_change else None
            ),
            "latency_to_marketo": workload["latency"]["to_marketo"],
        }
    found["daily_budget"] = cap.SHIPPED_DAILY_BUDGET
    found["model_at_1m"] = cap.paced_day(1_000_000).to_json()
    return found
