"""The backfill job's state: its phase, cursors, counts and progress, kept in the state store.

One job at a time. Its state is one JSON document stored as the state store's checkpoint
``backfill/job`` (both adapters, conditional on the etag), so it survives a crash and a runner on
another machine continues where the last one stopped. A phase records its work as it goes: each
unit of work (a window, a page, a range of buckets, an import file) is done, then the cursor and
the counts move in one write. A kill between the two repeats the unit, which is why every unit's
effect is idempotent (see ``shared/backfill/__init__.py``).

Progress per phase: ``done`` of ``total`` units (rows, windows, buckets), when it started and was
last updated; :meth:`PhaseProgress.rate` and :meth:`PhaseProgress.eta_seconds` derive from them.
The console reads the same figures (``shared/backfill/status.py``).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import ConflictError
from shared.ports import StateStore

CHECKPOINT = "backfill/job"
LEASE = "backfill"


class Phase(StrEnum):
    """The phases in the order they run (``shared/backfill/__init__.py`` says what each does)."""

    LINKS = "links"
    MARKETO = "marketo"
    DYNAMICS = "dynamics"
    PARTNERS = "partners"
    MATCH_RECORDS = "match_records"
    MATCH_PERSONS = "match_persons"
    MATCH_EMAILS = "match_emails"
    MARKETO_WRITES = "marketo_writes"
    CREATES = "creates"
    CREATED_IDS = "created_ids"
    DYNAMICS_WRITES = "dynamics_writes"
    STORE = "store"
    DONE = "done"


ORDER = list(Phase)
# What a dry run does: read and match, then stop with the preview.
PREVIEW_PHASES = frozenset(
    {Phase.LINKS, Phase.MARKETO, Phase.DYNAMICS, Phase.PARTNERS, *(p for p in Phase if p.startswith("match"))}
)
UNITS = {
    Phase.LINKS: "links",
    Phase.MARKETO: "windows",
    Phase.DYNAMICS: "rows",
    Phase.PARTNERS: "buckets",
    Phase.MATCH_RECORDS: "buckets",
    Phase.MATCH_PERSONS: "buckets",
    Phase.MATCH_EMAILS: "buckets",
    Phase.MARKETO_WRITES: "buckets",
    Phase.CREATES: "buckets",
    Phase.CREATED_IDS: "buckets",
    Phase.DYNAMICS_WRITES: "buckets",
    Phase.STORE: "buckets",
    Phase.DONE: "",
}


class Status(StrEnum):
    RUNNING = "running"
    PREVIEWED = "previewed"  # a dry run that has finished: nothing was written
    DONE = "done"
    FAILED = "failed"  # stopped by a fault only a person can fix; resumable once it is fixed
    CANCELLED = "cancelled"


class Mode(StrEnum):
    BULK = "bulk"  # Bulk Lead Extract and Import (Sync Leads for small sets)
    REST = "rest"  # REST only: persons looked up 300 a call, written with Sync Leads


class Ambiguity(StrEnum):
    """What to do when a match is ambiguous (docs/initial-sync.md): never a guess."""

    REPORT = "report"  # link none of them; report each
    PREFER_CONTACT = "prefer_contact"  # the contact, then the oldest record
    PREFER_LEAD = "prefer_lead"  # the lead, then the oldest record
    OLDEST = "oldest"  # the record created first; the person with the lowest id
    NEWEST = "newest"  # the record created last; the person with the highest id


def now() -> datetime:
    return datetime.now(UTC)


class Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dry_run: bool = False
    since: datetime | None = None
    mode: Mode = Mode.BULK
    ambiguous: Ambiguity = Ambiguity.REPORT
    # Where the createdAt windows of the Marketo extract start (persons created before it are
    # not read; every window after it costs a few calls even when empty).
    created_from: datetime = datetime(2006, 1, 1, tzinfo=UTC)


class PhaseProgress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    done: int = 0
    total: int | None = None
    unit: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    # Seconds runners spent in the phase (waits for Marketo included; time no runner ran, not).
    seconds: float = 0.0

    @property
    def rate(self) -> float | None:
        """Units per second while the phase ran."""
        return self.done / self.seconds if self.seconds > 0 and self.done else None

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if self.finished_at is not None:
            return 0.0
        if rate is None or self.total is None:
            return None
        return max(self.total - self.done, 0) / rate

    def figures(self) -> dict[str, Any]:
        """What the CLI shows and the status read function returns."""
        rate, eta = self.rate, self.eta_seconds
        return {
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "rate_per_second": round(rate, 1) if rate is not None else None,
            "eta_seconds": round(eta) if eta is not None else None,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


class JobState(BaseModel):
    """The whole job as stored. ``cursor`` is the current phase's own (cleared when it ends)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: Status = Status.RUNNING
    phase: Phase = Phase.LINKS
    options: Options = Options()
    progress: dict[Phase, PhaseProgress] = Field(default_factory=dict)
    cursor: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    # Per "entity.field": how many pairs differ and which side fills which (the preview).
    fields: dict[str, dict[str, int]] = Field(default_factory=dict)
    # A few examples per kind of outcome (ids only, never an email address).
    samples: dict[str, list[str]] = Field(default_factory=dict)
    staging: str = ""
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    # When the reads started: changes after it are another runner's to repair (the guard).
    read_started_at: datetime | None = None
    # The last look for records someone else changed (the writes' guard).
    guarded_at: datetime | None = None
    error: str | None = None
    calls: dict[str, int] = Field(default_factory=dict)
    # Steps run (the function app names its step messages by it).
    steps: int = 0

    @staticmethod
    def new(options: Options) -> JobState:
        stamp = now().strftime("%Y%m%d%H%M%S")
        return JobState(id=f"bf{stamp}{uuid.uuid4().hex[:6]}", options=options)

    @property
    def finished(self) -> bool:
        return self.status in (Status.DONE, Status.PREVIEWED, Status.CANCELLED)

    # --- progress --------------------------------------------------------------------------------

    def enter(self, phase: Phase, total: int | None = None) -> None:
        """Start ``phase`` (its cursor empty)."""
        self.phase = phase
        self.cursor = {}
        progress = self.progress.setdefault(phase, PhaseProgress(unit=UNITS[phase]))
        progress.total = total
        progress.started_at = progress.started_at or now()
        progress.updated_at = now()

    def advance(self, done: int, total: int | None = None) -> None:
        progress = self.progress.setdefault(self.phase, PhaseProgress(unit=UNITS[self.phase]))
        progress.done += done
        if total is not None:
            progress.total = total
        progress.updated_at = now()

    def finish_phase(self) -> None:
        progress = self.progress.setdefault(self.phase, PhaseProgress(unit=UNITS[self.phase]))
        progress.finished_at = progress.updated_at = now()
        if progress.total is None:
            progress.total = progress.done

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    def sample(self, kind: str, text: str, *, keep: int = 20) -> None:
        found = self.samples.setdefault(kind, [])
        if len(found) < keep and text not in found:
            found.append(text)

    def field_outcome(self, key: str, outcome: str, n: int = 1) -> None:
        counts = self.fields.setdefault(key, {})
        counts[outcome] = counts.get(outcome, 0) + n


class JobStore:
    """The job document in the state store, written only over the version last read."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def load(self) -> tuple[JobState, str] | None:
        """The job and its etag, or None when no backfill ever ran."""
        checkpoint = self.state.get_checkpoint(CHECKPOINT)
        if checkpoint is None:
            return None
        return JobState.model_validate(json.loads(checkpoint.value)), checkpoint.etag

    def save(self, job: JobState, etag: str | None) -> str:
        """Write ``job`` (``etag`` None: the first job ever); ConflictError when another runner
        wrote it meanwhile. Returns the new etag."""
        job.updated_at = now()
        body = job.model_dump_json()
        return self.state.put_checkpoint(CHECKPOINT, body, etag=etag).etag

    def replace(self, job: JobState) -> str:
        """Store ``job`` whatever was stored (a new job replaces a finished one)."""
        current = self.state.get_checkpoint(CHECKPOINT)
        try:
            return self.save(job, current.etag if current is not None else None)
        except ConflictError:
            raise ConflictError(
                "another backfill runner changed the job at the same moment; try again", service="state"
            ) from None
