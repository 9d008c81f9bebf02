"""Running the job: one unit of work after another, its state saved after each.

:class:`Backfill` is the same whether a person runs it (``mdsync backfill``: :meth:`run`, until
done, sleeping while Marketo works) or the function app does (:meth:`step`, a bounded slice per
queue message, the next message scheduled for when there is more to do). A lease keeps two
runners apart; the job document's etag catches one that outlived its lease.

Faults: a transient one (a service unavailable, the rate share spent) leaves the unit to be
done again later; a permanent one that is not a person's data (a permission, a setting) stops
the job as ``failed``, with the reason, resumable once it is fixed (``mdsync backfill`` or the
start call again).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from shared.backfill import matching, reading, storing, writing
from shared.backfill.context import Context, Outcome
from shared.backfill.job import (
    LEASE,
    ORDER,
    PREVIEW_PHASES,
    JobState,
    JobStore,
    Mode,
    Options,
    Phase,
    Status,
    now,
)
from shared.backfill.staging import BUCKETS, ISSUES
from shared.errors import ConfigurationError, ConflictError, PermanentError, TransientError
from shared.ports import LogEntry

log = logging.getLogger(__name__)

Unit = Callable[[Context, JobState], Outcome]
Start = Callable[[Context, JobState], None]


@dataclass(frozen=True)
class PhaseSpec:
    unit: Unit
    start: Start | None = None
    runs: Callable[[JobState], bool] = lambda job: True


def _match_start(items: Callable[[JobState], int]) -> Start:
    return lambda ctx, job: matching.start_pass(ctx, job, items(job))


PHASES: dict[Phase, PhaseSpec] = {
    Phase.LINKS: PhaseSpec(reading.read_links),
    Phase.MARKETO: PhaseSpec(
        reading.read_marketo, reading.start_marketo, lambda job: job.options.mode is Mode.BULK
    ),
    Phase.DYNAMICS: PhaseSpec(reading.read_dynamics, reading.start_dynamics),
    Phase.PARTNERS: PhaseSpec(reading.read_partners, reading.start_partners, reading.partners_needed),
    Phase.MATCH_RECORDS: PhaseSpec(
        matching.match_records, _match_start(lambda job: job.counts.get("records_read", 0))
    ),
    Phase.MATCH_PERSONS: PhaseSpec(
        matching.match_persons,
        _match_start(lambda job: job.counts.get("persons_read", 0) + job.counts.get("links_read", 0)),
    ),
    Phase.MATCH_EMAILS: PhaseSpec(
        matching.match_emails,
        _match_start(lambda job: job.counts.get("persons_read", 0) + job.counts.get("records_read", 0)),
    ),
    Phase.MARKETO_WRITES: PhaseSpec(
        writing.write_marketo,
        lambda ctx, job: writing.start_writes(ctx, job, job.counts.get("pairs", 0), writing.PAIRS_PER_IMPORT),
    ),
    Phase.CREATES: PhaseSpec(
        writing.write_creates,
        lambda ctx, job: writing.start_writes(
            ctx, job, job.counts.get("persons_to_create", 0), writing.PAIRS_PER_IMPORT
        ),
    ),
    Phase.CREATED_IDS: PhaseSpec(
        writing.created_ids, writing.start_created_ids, lambda job: job.counts.get("persons_to_create", 0) > 0
    ),
    Phase.DYNAMICS_WRITES: PhaseSpec(
        writing.write_dynamics,
        lambda ctx, job: writing.start_writes(
            ctx,
            job,
            job.counts.get("pairs", 0) + job.counts.get("persons_created", 0),
            writing.PAIRS_PER_UPDATE,
        ),
    ),
    Phase.STORE: PhaseSpec(storing.store, storing.start_store),
}


class LeaseLost(Exception):
    """This runner's lease ran out and another runner holds the job: it stops, unsaved."""


class JobRunning(ConflictError):
    """A job is running already; it is resumed, or replaced with ``restart``."""


@dataclass(frozen=True)
class StepResult:
    job: JobState
    wait: float | None = None  # seconds until there is more to do; None: finished or stopped
    busy: bool = False  # another runner holds the job: nothing was done

    @property
    def finished(self) -> bool:
        return self.job.finished or self.job.status is Status.FAILED


class Backfill:
    """One backfill job, run by this process. ``owner`` names it in the lease, renewed at every
    save for ``lease_seconds``: the CLI names itself after the machine and its staging, so a
    restarted command (after a kill) takes its job back at once; the function app's steps are
    each their own owner, and a step whose runner died is taken over once the lease runs out."""

    def __init__(
        self,
        ctx: Context,
        *,
        owner: str | None = None,
        lease_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ctx = ctx
        self.jobs = JobStore(ctx.state)
        self.owner = owner or f"backfill-{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self._sleep = sleep
        self._etag: str | None = None
        self._mark: float | None = None

    # --- starting -----------------------------------------------------------------------------------

    def current(self) -> JobState | None:
        loaded = self.jobs.load()
        return loaded[0] if loaded else None

    def start(self, options: Options, *, restart: bool = False) -> JobState:
        """A new job; JobRunning when one is running (or failed, resumable) and not ``restart``."""
        existing = self.current()
        if existing is not None and not existing.finished and not restart:
            raise JobRunning(
                f"backfill {existing.id} is {existing.status.value} (phase {existing.phase.value}): "
                "resume it, or start again with --restart",
                service="state",
            )
        job = JobState.new(options)
        self.jobs.replace(job)
        log.info("backfill %s started (%s)", job.id, options.model_dump_json(exclude_defaults=True))
        return job

    # --- running ------------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[JobState], None] | None = None) -> JobState:
        """Until the job is finished (or stopped by a fault), waiting while Marketo works."""
        while True:
            result = self.step(budget_seconds=30.0, on_progress=on_progress)
            if result.finished or result.wait is None:
                return result.job
            self._sleep(result.wait)

    def step(
        self, *, budget_seconds: float, on_progress: Callable[[JobState], None] | None = None
    ) -> StepResult:
        """Work on the job for about ``budget_seconds``; what is left and when to come back."""
        state = self.ctx.state
        if not state.acquire_lease(LEASE, self.owner, self.lease_seconds):
            return self._busy()
        try:
            return self._step(budget_seconds, on_progress)
        except LeaseLost:
            return self._busy()
        finally:
            state.release_lease(LEASE, self.owner)

    def _busy(self) -> StepResult:
        """Another runner holds the job: come back when its lease would have run out."""
        job = self.current()
        if job is None:
            raise ConfigurationError("no backfill job to run")
        lease = self.ctx.state.get_lease(LEASE)
        left = (lease.expires_at - now()).total_seconds() if lease is not None else 0.0
        return StepResult(job, wait=max(left, 1.0), busy=True)

    def _step(self, budget_seconds: float, on_progress: Callable[[JobState], None] | None) -> StepResult:
        loaded = self.jobs.load()
        if loaded is None:
            raise ConfigurationError("no backfill job to run: start one first")
        job, self._etag = loaded
        if job.finished:
            return StepResult(job)
        job.steps += 1
        if job.status is Status.FAILED:
            job.status, job.error = Status.RUNNING, None  # resumed: its cause was fixed
        self._own_staging(job)
        if self.ctx.fence is not None and not job.options.dry_run:
            self.ctx.fence.put_up(job.id)  # live batches claim their records from now on
        deadline = time.monotonic() + budget_seconds
        calls = (self.ctx.marketo.calls.total, self.ctx.dataverse.calls.total)
        try:
            while time.monotonic() < deadline:
                outcome = self._unit(job)
                self._count_calls(job, calls)
                calls = (self.ctx.marketo.calls.total, self.ctx.dataverse.calls.total)
                self._save(job)
                if on_progress is not None:
                    on_progress(job)
                if job.status is Status.DONE:
                    # Only once the job is saved done: a kill before would find it mid-phase
                    # with no staging, and read everything again.
                    self.ctx.staging.drop()
                if job.finished or job.status is Status.FAILED:
                    self._release_share()
                    return StepResult(job)
                if outcome.wait:
                    return StepResult(job, wait=outcome.wait)
        except TransientError as exc:
            log.warning("backfill %s, phase %s: %s; trying again later", job.id, job.phase.value, exc)
            self._count_calls(job, calls)
            self._save(job)
            return StepResult(job, wait=max(exc.retry_after or 0.0, self.ctx.poll_seconds, 1.0))
        except (PermanentError, ConfigurationError) as exc:
            log.error("backfill %s stopped in phase %s: %s", job.id, job.phase.value, exc)
            self._count_calls(job, calls)
            job.status, job.error = Status.FAILED, str(exc)
            self._save(job)
            self._release_share()
            return StepResult(job)
        return StepResult(job, wait=0.0)

    def _unit(self, job: JobState) -> Outcome:
        spec = PHASES.get(job.phase)
        if spec is None or not spec.runs(job):
            self._next_phase(job)
            return Outcome()
        if job.phase not in job.progress:
            self._enter(job, job.phase)
            return Outcome()
        outcome = spec.unit(self.ctx, job)
        if outcome.done:
            job.finish_phase()
            seconds = job.progress[job.phase].seconds
            log.info("backfill %s: phase %s done (%.0f s)", job.id, job.phase.value, seconds)
            self._next_phase(job)
        return outcome

    def _enter(self, job: JobState, phase: Phase) -> None:
        if phase is Phase.LINKS and job.read_started_at is None:
            job.read_started_at = now()
        job.enter(phase)
        spec = PHASES[phase]
        if spec.start is not None:
            spec.start(self.ctx, job)

    def _next_phase(self, job: JobState) -> None:
        following = ORDER[ORDER.index(job.phase) + 1]
        if job.options.dry_run and following not in PREVIEW_PHASES:
            job.status, job.finished_at = Status.PREVIEWED, now()
            job.phase = following
            job.cursor = {}
            return
        if following is Phase.DONE:
            self._finish(job)
            return
        job.phase = following
        job.cursor = {}

    def _finish(self, job: JobState) -> None:
        job.phase, job.cursor = Phase.DONE, {}
        job.status, job.finished_at = Status.DONE, now()
        summary = ", ".join(f"{k} {v}" for k, v in sorted(job.counts.items()) if v)
        self.ctx.state.append_log(
            [LogEntry(None, None, "-", "backfill", f"backfill {job.id} done: {summary}")]
        )
        log.info("backfill %s done: %s", job.id, summary)

    def _release_share(self) -> None:
        """The job has ended (or stopped until a person fixes it): the live sync gets its share
        of Marketo's rate back (``shared/backfill/share.py``) and stops claiming records
        (``shared/backfill/fence.py``)."""
        if self.ctx.share is not None:
            self.ctx.share.release()
        if self.ctx.fence is not None:
            self.ctx.fence.take_down()

    def _own_staging(self, job: JobState) -> None:
        """The staging must be this job's; if it is not (a new job, or the job moved to a runner
        that cannot reach its staging), the job reads again from the start (its writes are
        idempotent, and what it stored is read back)."""
        staging = self.ctx.use_job(job.id)
        if staging.owner() == job.id:
            return
        if job.phase is not Phase.LINKS or job.progress:
            log.warning(
                "backfill %s: its staging (%s) is not here; reading both sides again", job.id, job.staging
            )
            job.progress, job.counts, job.fields, job.samples, job.cursor = {}, {}, {}, {}, {}
            job.phase, job.read_started_at = Phase.LINKS, None
        staging.claim(job.id)
        job.staging = staging.location
        self._save(job)

    def _save(self, job: JobState) -> None:
        """Write the job over the version this runner last wrote; the wall time since the last
        save goes to the current phase (its rate and ETA)."""
        if not self.ctx.state.acquire_lease(LEASE, self.owner, self.lease_seconds):
            raise LeaseLost(f"backfill {job.id}: another runner took the job over")
        mark = time.monotonic()
        progress = job.progress.get(job.phase)
        if progress is not None and progress.finished_at is None and self._mark is not None:
            progress.seconds += mark - self._mark
        self._mark = mark
        self._etag = self.jobs.save(job, self._etag)

    def _count_calls(self, job: JobState, before: tuple[int, int]) -> None:
        """The API calls of this step, in the job's totals (per job, for the calls per record)."""
        marketo, dataverse = self.ctx.marketo.calls.total, self.ctx.dataverse.calls.total
        job.calls["marketo"] = job.calls.get("marketo", 0) + marketo - before[0]
        job.calls["dataverse"] = job.calls.get("dataverse", 0) + dataverse - before[1]

    def issues(self, limit: int = 1000) -> list[dict[str, object]]:
        """The ambiguous matches the preview found (from the staging: a finished preview keeps it)."""
        items = self.ctx.staging.scan(ISSUES, 0, BUCKETS)
        return [item.value for item in items[:limit]]
