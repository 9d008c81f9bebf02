"""What the API limits allow: the throughput ceiling and the daily capacity model. Pure.

Ceiling. A synced change needs, at the very least, a share of a few batched calls: the sync
reconciles (it reads both sides, then writes the target) and captures Marketo's changes from
its activity feed, so per change it needs

* Dynamics -> Marketo: Marketo read 1/300 + Marketo write 1/300 + the activity page that holds
  the write's own "Change Data Value" activity 1/300; Dataverse read 1/250;
* Marketo -> Dynamics: Marketo activity page 1/300 (its Change Data Value activities carry the
  new values, so no Marketo read is needed where correctness allows, ``shared/sync/carried.py``);
  Dataverse read 1/250 + Dataverse write 1/1000 (a ``$batch`` or UpdateMultiple carries up to
  1000 rows).

(300 is Marketo's batch size; 250 GUIDs is what fits a Dataverse ``$filter`` URL of about
10 KB.) The echo page is in the minimum because Marketo's API cannot leave it out: Get Lead
Changes has no filter on who made a change, so any sync that reads Marketo's changes from its
activities pages through the activities of its own writes. ``strict_minimal_calls`` leaves it
out, for comparison. A system allowing ``R`` calls per second then caps a direction at
``R / calls per change``, and the ceiling is the smaller of the two systems:

    ceiling = min(marketo_rate / marketo_calls_per_change, dataverse_rate / dataverse_calls_per_change)

With Marketo's 100 calls / 20 s (5 per second) and Dataverse's 6000 / 300 s (20 per second),
Marketo binds both directions: 5 x 100 = 500 changes a second from Dynamics, 5 x 300 = 1500
from Marketo. The daily quota (50,000 calls) binds sooner over a day: 50,000 x 100 = 5 M changes
from Dynamics a day, 57.9 per second on average.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from shared.pacing import PacingPolicy, Spend, window

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class ApiLimits:
    marketo_calls: int = 100
    marketo_window_seconds: float = 20.0
    marketo_daily_quota: int = 50_000
    marketo_batch: int = 300
    dataverse_requests: int = 6_000
    dataverse_window_seconds: float = 300.0
    dataverse_read_ids: int = 250
    dataverse_write_batch: int = 1_000

    @property
    def marketo_rate(self) -> float:
        return self.marketo_calls / self.marketo_window_seconds

    @property
    def dataverse_rate(self) -> float:
        return self.dataverse_requests / self.dataverse_window_seconds


@dataclass(frozen=True)
class MinimalCalls:
    """The least calls per synced change each system must see, for one direction."""

    direction: str
    marketo: float
    dataverse: float


def minimal_calls(limits: ApiLimits, *, echo: bool = True) -> dict[str, MinimalCalls]:
    """``echo``: count the activity page of mdsync's own Marketo writes (see the module doc)."""
    batch = limits.marketo_batch
    read = 1 / limits.dataverse_read_ids
    to_marketo = (3 if echo else 2) / batch
    return {
        "to_marketo": MinimalCalls("to_marketo", to_marketo, read),
        "to_dynamics": MinimalCalls("to_dynamics", 1 / batch, read + 1 / limits.dataverse_write_batch),
    }


@dataclass(frozen=True)
class Ceiling:
    direction: str
    changes_per_second: float
    bound_by: str
    marketo_calls_per_change: float
    dataverse_calls_per_change: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ceiling(limits: ApiLimits, direction: str, *, marketo_share: float = 1.0, echo: bool = True) -> Ceiling:
    """The sustained ceiling of one direction; ``marketo_share`` is the part of Marketo's rate
    the sync's client allows itself (the worker's calls per 20 s / 100)."""
    calls = minimal_calls(limits, echo=echo)[direction]
    by_marketo = limits.marketo_rate * marketo_share / calls.marketo
    by_dataverse = limits.dataverse_rate / calls.dataverse
    bound = "marketo" if by_marketo <= by_dataverse else "dataverse"
    return Ceiling(direction, min(by_marketo, by_dataverse), bound, calls.marketo, calls.dataverse)


def daily_ceiling(limits: ApiLimits) -> float:
    """Changes a day the Marketo quota allows at the minimal calls per change."""
    per_change = minimal_calls(limits)["to_marketo"].marketo
    return limits.marketo_daily_quota / per_change


@dataclass(frozen=True)
class Deployment:
    """The settings the daily cost depends on (the shipped defaults)."""

    poll_seconds: float = 60.0  # MARKETO_POLL_SCHEDULE
    deletes_seconds: float = 300.0  # MARKETO_DELETES_POLL_SECONDS (at most once per poll run)
    sweep_seconds: float = 900.0  # DYNAMICS_SWEEP_SCHEDULE
    batch_wait_seconds: float = 2.0  # host.json maxBatchWaitTime
    min_batch: int = 300  # host.json minMessageBatchSize
    dataverse_write_chunk: int = 1_000  # rows per $batch the worker writes (shared/sync/writes.py)


@dataclass(frozen=True)
class CapacityRow:
    changes_per_day: int
    to_marketo_batch: float  # notices per worker invocation, Dynamics -> Marketo
    marketo_calls_per_day: float
    marketo_quota_used: float  # fraction of the daily quota
    dataverse_requests_per_day: float
    dataverse_rows_written_per_day: float  # what the Power Platform entitlement counts

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _per_batch(batch: float, size: int) -> float:
    """Calls for one batch of ``batch`` records, ``size`` records a call."""
    return float(math.ceil(batch / size)) if batch > 0 else 0.0


def webhook_batch(rate: float, deployment: Deployment) -> float:
    """Notices per invocation when Dynamics changes arrive at ``rate`` per second, one webhook
    each: the first opens the host's batch window, those arriving within it join, and a full
    minimum batch leaves early. A busy worker only makes batches larger, so this is the
    expensive case."""
    return min(float(deployment.min_batch), 1.0 + rate * deployment.batch_wait_seconds)


def _invocation_calls(changes: float, batch: float, limits: ApiLimits) -> float:
    """Marketo calls of the worker invocations syncing ``changes`` Dynamics changes, ``batch``
    a time: a read and a write per 300 persons each."""
    return changes / batch * 2 * _per_batch(batch, limits.marketo_batch) if changes else 0.0


def capacity(
    changes_per_day: int,
    *,
    to_marketo_share: float = 0.5,
    deployment: Deployment | None = None,
    limits: ApiLimits | None = None,
) -> CapacityRow:
    """API calls a day for ``changes_per_day`` changes arriving evenly, ``to_marketo_share`` of
    them made in Dynamics, the rest in Marketo.

    Dynamics -> Marketo: per worker invocation one Marketo read and one write per 300 persons
    and one Dataverse read per 250 rows; the poller later pages through the activities of those
    writes (one page per 300). Marketo -> Dynamics: every poll run reads the lead-change pages
    (one per 300 activities, at least one), and a deleted-leads page and a merges page every
    ``deletes_seconds`` (or every run, if runs are further apart); its notices are synced
    as one invocation: no Marketo read (changes arriving evenly touch persons not synced within
    the last minute, whose values the notices carry, ``shared/sync/carried.py``), a Dataverse
    read per 250 and a Dataverse write request per ``dataverse_write_chunk`` rows. The sweep
    follows two delta links per run."""
    deployment = deployment or Deployment()
    limits = limits or ApiLimits()
    to_marketo = changes_per_day * to_marketo_share
    to_dynamics = changes_per_day - to_marketo
    batch = webhook_batch(to_marketo / SECONDS_PER_DAY, deployment)
    invocations = to_marketo / batch if to_marketo else 0.0
    polls = SECONDS_PER_DAY / deployment.poll_seconds
    deletes = SECONDS_PER_DAY / max(deployment.poll_seconds, deployment.deletes_seconds)
    per_poll = to_dynamics / polls
    size = limits.marketo_batch
    marketo = (
        _invocation_calls(to_marketo, batch, limits)
        + to_marketo / size
        + polls * max(1.0, _per_batch(per_poll, size))
        + 2 * deletes  # Get Deleted Leads and the Merge Leads activities
    )
    dataverse = (
        invocations * _per_batch(batch, limits.dataverse_read_ids)
        + polls
        * (
            _per_batch(per_poll, limits.dataverse_read_ids)
            + _per_batch(per_poll, deployment.dataverse_write_chunk)
        )
        + 2 * SECONDS_PER_DAY / deployment.sweep_seconds
    )
    return CapacityRow(
        changes_per_day,
        batch,
        marketo,
        marketo / limits.marketo_daily_quota,
        dataverse,
        to_dynamics,
    )


def most_changes(fits: Callable[[int], bool], *, within: int = 1_000) -> int:
    """The most changes a day (to ``within``) for which ``fits`` holds, assuming more never fit
    once fewer do not."""
    low, high = 0, 100_000_000
    while high - low > within:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def changes_within_quota(to_marketo_share: float, *, deployment: Deployment | None = None) -> int:
    """The most changes a day (arriving evenly) whose calls fit Marketo's daily quota."""
    return most_changes(
        lambda n: (
            capacity(n, to_marketo_share=to_marketo_share, deployment=deployment).marketo_quota_used <= 1.0
        )
    )


def sustained(
    measured_rate: float,
    marketo_per_change: float | None,
    dataverse_per_change: float | None,
    *,
    marketo_rate: float,
    dataverse_rate: float,
) -> float:
    """The rate a syncer keeps up once its rate windows are full: what it did (``measured_rate``)
    or what its measured calls per change allow within the rates it may use, whichever is less.

    A burst shorter than one rate window can beat the limits (it spends a budget that was idle
    before), so the measured rate alone says nothing about a long burst; the calls per change
    do."""
    limits = [measured_rate]
    if marketo_per_change:
        limits.append(marketo_rate / marketo_per_change)
    if dataverse_per_change:
        limits.append(dataverse_rate / dataverse_per_change)
    return min(limits)


# --- with the batching window (shared/pacing.py) -----------------------------------------------

# The shipped budget: MARKETO_DAILY_QUOTA x the sync's share of the rate, (MARKETO_MAX_CALLS_PER_20S
# - MARKETO_FLOW_STEP_CALLS_PER_20S) / 100 (Settings.sync_daily_budget).
SHIPPED_DAILY_BUDGET = 30_000
STEP_SECONDS = 60.0


@dataclass(frozen=True)
class PacedDay:
    """A day of evenly arriving changes with the batching window on: a projection."""

    changes_per_day: int
    to_marketo_share: float
    daily_budget: float
    marketo_calls_per_day: float
    marketo_calls_per_change: float
    paced_share_of_day: float  # of the day's minutes with a window open
    mean_window_seconds: float  # over those minutes
    longest_window_seconds: float

    @property
    def within_budget(self) -> bool:
        return self.marketo_calls_per_day <= self.daily_budget

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "within_budget": self.within_budget}


def paced_day(
    changes_per_day: int,
    *,
    to_marketo_share: float = 0.5,
    policy: PacingPolicy | None = None,
    deployment: Deployment | None = None,
    limits: ApiLimits | None = None,
) -> PacedDay:
    """Walk one day a minute at a time: each minute the worker's window comes from the calls
    spent so far (``shared.pacing.window``, as the worker decides it), and the minute spends
    what ``capacity`` counts, except that while a window ``w`` is open the Dynamics changes are
    synced once per window (at most ``1 / w`` invocations a second: the deferred notices of a
    window come back together) instead of once per host batch."""
    deployment = deployment or Deployment()
    limits = limits or ApiLimits()
    policy = policy or PacingPolicy(float(SHIPPED_DAILY_BUDGET))
    day = capacity(changes_per_day, to_marketo_share=to_marketo_share, deployment=deployment, limits=limits)
    to_marketo = changes_per_day * to_marketo_share
    unpaced = _invocation_calls(to_marketo, day.to_marketo_batch, limits)
    other_per_second = (day.marketo_calls_per_day - unpaced) / SECONDS_PER_DAY
    rate = to_marketo / SECONDS_PER_DAY
    spent, paced, window_sum, longest = 0.0, 0, 0.0, 0.0
    minutes = int(SECONDS_PER_DAY / STEP_SECONDS)
    for minute in range(minutes):
        seconds = window(policy, Spend(spent, minute * STEP_SECONDS))
        if seconds and rate:
            invocations = min(rate, 1.0 / seconds)
            worker = _invocation_calls(rate, rate / invocations, limits)
            paced, window_sum, longest = paced + 1, window_sum + seconds, max(longest, seconds)
        else:
            worker = unpaced / SECONDS_PER_DAY
        spent += (worker + other_per_second) * STEP_SECONDS
    return PacedDay(
        changes_per_day,
        to_marketo_share,
        policy.daily_budget,
        spent,
        spent / changes_per_day if changes_per_day else 0.0,
        paced / minutes,
        window_sum / paced if paced else 0.0,
        longest,
    )


def changes_within_budget_paced(to_marketo_share: float, *, policy: PacingPolicy | None = None) -> int:
    """The most changes a day (arriving evenly) whose paced day fits the budget."""
    return most_changes(
        lambda n: paced_day(n, to_marketo_share=to_marketo_share, policy=policy).within_budget, within=10_000
    )
