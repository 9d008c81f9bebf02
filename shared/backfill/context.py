"""What every phase works with: the backfill's own clients, the stores, the mapping's rules.

A unit of work returns an :class:`Outcome`: more to do, the phase is done, or nothing to do until
later (a bulk job at Marketo is still running): the runner then waits, or, in the function app,
schedules its next step for then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.backfill.fence import SETTLE_SECONDS, Fence
from shared.backfill.share import ShareGate
from shared.backfill.staging import StagingStore, range_width
from shared.dataverse.client import DataverseClient
from shared.mapping import FieldMapping
from shared.marketo.client import MarketoClient
from shared.ports import NoticeQueue, StateStore
from shared.sync.activity_log import ActivityLog
from shared.sync.planning import Planner
from shared.sync.reads import DynamicsReader, MarketoReader

# Bulk writes below this many rows go through Sync Leads (300 a call): an import costs a submit,
# its status polls and the failure and warning reads, more calls than Sync Leads for so few.
SYNC_LEADS_MAX = 900


@dataclass(frozen=True)
class Outcome:
    done: bool = False  # the phase has finished
    wait: float = 0.0  # nothing to do for this many seconds (a job at Marketo is running)


MORE = Outcome()
DONE = Outcome(done=True)


def wait(seconds: float) -> Outcome:
    return Outcome(wait=max(seconds, 0.1))


@dataclass
class Context:
    marketo: MarketoClient
    dataverse: DataverseClient
    state: StateStore
    # The staging of a job, by job id (a SQLite file, or a table of the job's own).
    staging_for: Callable[[str], StagingStore]
    mapping: FieldMapping
    # The live sync's queue: records the backfill leaves to it (handovers) are queued there.
    queue: NoticeQueue | None = None
    poll_seconds: float = 30.0
    # Below this many rows a Marketo write uses Sync Leads rather than an import.
    sync_leads_max: int = SYNC_LEADS_MAX
    # Items per unit of work in every pass (None: each pass's own size; tests make it small to
    # have many units, hence many places to be killed at).
    range_items: int | None = None
    # Rows per Dataverse page (5,000, the most Dataverse gives); links per state store page.
    page_size: int = 5_000
    link_page: int = 1_000
    clock: Callable[[], float] = time.monotonic
    # The job's reservation of its Marketo share (its client's budget), released when it ends.
    share: ShareGate | None = None
    # Live batches claim their records while it is up; the job's first range of writes waits
    # until it is this old (every live batch begun before it has ended: shared/backfill/fence.py).
    fence: Fence | None = None
    fence_settle_seconds: float = SETTLE_SECONDS
    rows: DynamicsReader = field(init=False)
    people: MarketoReader = field(init=False)
    planner: Planner = field(init=False)
    activity_log: ActivityLog = field(init=False)
    _staging: tuple[str, StagingStore] | None = field(default=None, init=False)

    @property
    def staging(self) -> StagingStore:
        if self._staging is None:
            raise RuntimeError("no job's staging is open (use_job first)")
        return self._staging[1]

    def use_job(self, job_id: str) -> StagingStore:
        """Open ``job_id``'s staging (closing another job's)."""
        if self._staging is not None and self._staging[0] != job_id:
            self._staging[1].close()
            self._staging = None
        if self._staging is None:
            self._staging = (job_id, self.staging_for(job_id))
        return self._staging[1]

    def close(self) -> None:
        if self._staging is not None:
            self._staging[1].close()
            self._staging = None

    def width(self, items: int, per_range: int) -> int:
        """The bucket width of a pass's ranges over ``items`` items."""
        return range_width(items, self.range_items or per_range)

    def __post_init__(self) -> None:
        self.rows = DynamicsReader(self.dataverse, self.mapping)
        self.people = MarketoReader(self.marketo, self.mapping)
        self.planner = Planner(self.mapping, self.rows, self.people)
        self.activity_log = ActivityLog(self.marketo)
