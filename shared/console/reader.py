"""Gathering the status snapshot's inputs from the stores: a day of tallies, the queue's counts,
the errors per kind and a few state records. Each is one query (or one grouped scan), whatever
the size of the sync log; ``build_status`` then computes every figure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.console import tallies as t
from shared.console.budgets import read_budgets
from shared.console.capture import read_capture
from shared.console.failures import DEAD_LETTER, PARKED
from shared.console.pause import PauseSwitch
from shared.console.progress import ProgressSource
from shared.console.status import TREND_HOURS, Status, build_status, trailing_hour
from shared.pacing import PacingPolicy
from shared.ports import ErrorQuery, OperationsStore, QueueInspector, QueueStats, StateStore

# A Marketo day starts at most 30 hours before now (US Central, daylight saving), and the trend
# needs 24: read 31 hours of tallies.
TALLY_HOURS = 31


@dataclass
class StatusReader:
    state: StateStore
    operations: OperationsStore
    queue: QueueInspector | None
    pause: PauseSwitch
    progress: ProgressSource
    marketo_daily_quota: int
    marketo_window_limit: int
    pacing: PacingPolicy | None = None

    def read(self, now: datetime | None = None) -> Status:
        moment = now or datetime.now(UTC)
        tallies = self.operations.read_tallies(moment - timedelta(hours=max(TALLY_HOURS, TREND_HOURS)))
        queue = self.queue.stats() if self.queue is not None else QueueStats([], 0, 0, 0, exact=False)
        groups = self.operations.error_groups(ErrorQuery())
        errors_by_kind: dict[str, int] = {}
        for group in groups:
            errors_by_kind[group.kind] = errors_by_kind.get(group.kind, 0) + group.errors
        errors_by_kind[DEAD_LETTER] = queue.dead_lettered
        parked = (
            {
                entity: sum(
                    g.errors for g in self.operations.error_groups(ErrorQuery(kind=PARKED, entity=entity))
                )
                for entity in ("lead", "contact", "person")
            }
            if errors_by_kind.get(PARKED)
            else {}
        )
        webhook_counts: dict[datetime, int] = {}
        for x in tallies:
            if x.name == t.WEBHOOK:
                webhook_counts[x.hour] = webhook_counts.get(x.hour, 0) + x.count
        return build_status(
            now=moment,
            tallies=tallies,
            queue=queue,
            parked_by_lane=parked,
            pause=self.pause.current(fresh=True),
            capture=read_capture(self.state, moment, round(trailing_hour(webhook_counts, moment))),
            budgets=read_budgets(
                self.state,
                tallies,
                moment,
                daily_quota=self.marketo_daily_quota,
                window_limit=self.marketo_window_limit,
                policy=self.pacing,
            ),
            initial_sync=self.progress(),
            errors_by_kind=errors_by_kind,
        )
