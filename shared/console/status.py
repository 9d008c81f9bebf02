"""The status snapshot: every figure of the console's first page, per entity and direction.

Backlog lanes follow what a notice knows when it waits: a Dynamics change goes to Marketo for a
lead or a contact; a Marketo change goes to Dynamics for a person (whether that is a lead or a
contact is decided when the worker reads the link). Synced figures follow what the worker wrote:
lead or contact, towards Marketo or towards Dynamics.

The time to clear a lane's backlog is its size over the rate the worker drained that lane in the
trailing hour (``trailing_hour``); none while nothing was drained, and none while paused.
``build_status`` is pure: the reader gathers its inputs (one day of tallies, the queue's counts,
a few state records), so the page costs the same with a million sync-log entries as with ten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.console import tallies as t
from shared.console.budgets import Budgets
from shared.console.capture import CaptureFigure
from shared.console.pause import PauseState
from shared.console.progress import InitialSyncProgress
from shared.ports import BacklogRow, QueueStats, Tally

LANES = (("lead", t.TO_MARKETO), ("contact", t.TO_MARKETO), ("person", t.TO_DYNAMICS))
SYNC_ROWS = (
    ("lead", t.TO_MARKETO),
    ("lead", t.TO_DYNAMICS),
    ("contact", t.TO_MARKETO),
    ("contact", t.TO_DYNAMICS),
)
WINNERS = ("marketo", "dynamics")
TREND_HOURS = 24


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def trailing_hour(counts: dict[datetime, int], now: datetime) -> float:
    """Events in the 60 minutes before ``now`` from hourly counts: this hour's so far plus the
    part of the previous hour still inside the window (assumed spread evenly over it)."""
    this_hour = hour_of(now)
    into = (now - this_hour).total_seconds() / 3600
    return counts.get(this_hour, 0) + counts.get(this_hour - timedelta(hours=1), 0) * (1 - into)


def eta_seconds(backlog: int, per_hour: float, *, paused: bool = False) -> float | None:
    """Seconds to drain ``backlog`` at ``per_hour``; 0 when empty; None when it cannot drain."""
    if backlog <= 0:
        return 0.0
    if paused or per_hour <= 0:
        return None
    seconds = backlog / per_hour * 3600
    return seconds if math.isfinite(seconds) else None


@dataclass(frozen=True)
class BacklogLane:
    entity: str
    direction: str
    waiting: int
    scheduled: int
    held: int
    parked: int
    dead_lettered: int
    oldest_waiting: datetime | None
    age_seconds: float | None
    drained_per_hour: float
    eta_seconds: float | None

    @property
    def queued(self) -> int:
        return self.waiting + self.scheduled + self.held


@dataclass(frozen=True)
class SyncRow:
    entity: str
    direction: str
    synced_1h: int
    synced_24h: int
    created_24h: int
    failed_1h: int
    failed_24h: int
    collisions_24h: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HourPoint:
    hour: datetime
    to_marketo: int
    to_dynamics: int
    failed: int


@dataclass(frozen=True)
class Status:
    generated_at: datetime
    pause: PauseState
    backlog: list[BacklogLane]
    sync: list[SyncRow]
    trend: list[HourPoint]
    capture: list[CaptureFigure]
    budgets: Budgets
    initial_sync: InitialSyncProgress | None
    errors_by_kind: dict[str, int]
    queue_exact: bool
    queue_sampled: int

    @property
    def backlog_total(self) -> int:
        return sum(lane.queued for lane in self.backlog)

    @property
    def eta_total(self) -> float | None:
        etas = [lane.eta_seconds for lane in self.backlog if lane.queued]
        if any(e is None for e in etas):
            return None
        return max((e for e in etas if e is not None), default=0.0)

    @property
    def oldest_waiting(self) -> datetime | None:
        return min((lane.oldest_waiting for lane in self.backlog if lane.oldest_waiting), default=None)


def _by_hour(tallies: Iterable[Tally], entity: str, direction: str, name: str) -> dict[datetime, int]:
    found: dict[datetime, int] = {}
    for x in tallies:
        if x.name == name and x.entity == entity and x.direction == direction:
            found[hour_of(x.hour)] = found.get(hour_of(x.hour), 0) + x.count
    return found


def _since(counts: dict[datetime, int], start: datetime) -> int:
    return sum(n for hour, n in counts.items() if hour >= hour_of(start))


def _backlog_lanes(
    rows: Sequence[BacklogRow], parked: dict[str, int], tallies: Sequence[Tally], now: datetime, paused: bool
) -> list[BacklogLane]:
    by_lane = {(r.entity, r.direction): r for r in rows}
    lanes = []
    for entity, direction in LANES:
        row = by_lane.get((entity, direction), BacklogRow(entity, direction))
        drained = trailing_hour(_by_hour(tallies, entity, direction, t.PROCESSED), now)
        queued = row.waiting + row.retrying + row.held
        oldest = row.oldest_waiting
        lanes.append(
            BacklogLane(
                entity=entity,
                direction=direction,
                waiting=row.waiting,
                scheduled=row.retrying,
                held=row.held,
                parked=parked.get(entity, 0),
                dead_lettered=row.dead_lettered,
                oldest_waiting=oldest,
                age_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else None,
                drained_per_hour=round(drained, 1),
                eta_seconds=eta_seconds(queued, drained, paused=paused),
            )
        )
    return lanes


def _sync_rows(tallies: Sequence[Tally], now: datetime) -> list[SyncRow]:
    day_ago, hour_ago = now - timedelta(hours=TREND_HOURS - 1), now
    rows = []
    for entity, direction in SYNC_ROWS:
        synced = _by_hour(tallies, entity, direction, t.SYNCED)
        failed = _by_hour(tallies, entity, direction, t.FAILED)
        collisions = {
            winner: _since(_by_hour(tallies, entity, direction, t.collision_name(winner)), day_ago)
            for winner in WINNERS
        }
        rows.append(
            SyncRow(
                entity=entity,
                direction=direction,
                synced_1h=round(trailing_hour(synced, hour_ago)),
                synced_24h=_since(synced, day_ago),
                created_24h=_since(_by_hour(tallies, entity, direction, t.CREATED), day_ago),
                failed_1h=round(trailing_hour(failed, hour_ago)),
                failed_24h=_since(failed, day_ago),
                collisions_24h={w: n for w, n in collisions.items() if n},
            )
        )
    return rows


def _trend(tallies: Sequence[Tally], now: datetime) -> list[HourPoint]:
    first = hour_of(now) - timedelta(hours=TREND_HOURS - 1)
    points = {first + timedelta(hours=i): [0, 0, 0] for i in range(TREND_HOURS)}
    for x in tallies:
        point = points.get(hour_of(x.hour))
        if point is None:
            continue
        if x.name in (t.SYNCED, t.CREATED):
            point[0 if x.direction == t.TO_MARKETO else 1] += x.count
        elif x.name == t.FAILED:
            point[2] += x.count
    return [HourPoint(hour, *counts) for hour, counts in sorted(points.items())]


def build_status(
    *,
    now: datetime,
    tallies: Sequence[Tally],
    queue: QueueStats,
    parked_by_lane: dict[str, int],
    pause: PauseState,
    capture: list[CaptureFigure],
    budgets: Budgets,
    initial_sync: InitialSyncProgress | None,
    errors_by_kind: dict[str, int],
) -> Status:
    return Status(
        generated_at=now,
        pause=pause,
        backlog=_backlog_lanes(queue.rows, parked_by_lane, tallies, now, pause.paused),
        sync=_sync_rows(tallies, now),
        trend=_trend(tallies, now),
        capture=capture,
        budgets=budgets,
        initial_sync=initial_sync,
        errors_by_kind=errors_by_kind,
        queue_exact=queue.exact,
        queue_sampled=queue.sampled,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_json(status: Status) -> dict[str, Any]:
    """The JSON twin of the page: the same figures, for scripts."""
    budgets = status.budgets
    document: dict[str, Any] = _plain(
        {
            "generated_at": status.generated_at,
            "paused": status.pause.as_dict(),
            "backlog": {
                "total": status.backlog_total,
                "oldest_waiting": status.oldest_waiting,
                "eta_seconds": status.eta_total,
                "exact": status.queue_exact,
                "sampled": status.queue_sampled,
                "lanes": [{**asdict(lane), "queued": lane.queued} for lane in status.backlog],
            },
            "sync": [asdict(row) for row in status.sync],
            "trend": [asdict(point) for point in status.trend],
            "capture": [asdict(figure) for figure in status.capture],
            "budgets": {
                **asdict(budgets),
                "marketo_quota_used": round(budgets.marketo_quota_used, 4),
                "dataverse_requests_in_window": budgets.dataverse_requests_in_window,
            },
            "initial_sync": None
            if status.initial_sync is None
            else {
                **status.initial_sync.as_dict(),
                "fraction": status.initial_sync.fraction,
                "eta_seconds": status.initial_sync.eta_seconds(status.generated_at),
            },
            "errors": status.errors_by_kind,
        }
    )
    return document
