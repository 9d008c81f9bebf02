"""The backfill's progress as the operator console and the status function show it.

:func:`backfill_progress` reads the job from the state store (one read, no API call) and
returns plain JSON: the job's status and phase, per phase done of total with rate and ETA, the
counts, the preview's field outcomes, the API calls so far. ``functions/backfill.py`` serves it
as ``GET /api/backfill``; :func:`console_progress` gives the operator console the same job in its
own shape (``shared/console/progress.py``).
"""

from __future__ import annotations

from typing import Any

from shared.backfill.job import ORDER, JobState, JobStore, Status
from shared.console.progress import InitialSyncProgress
from shared.ports import StateStore


def progress_of(job: JobState) -> dict[str, Any]:
    records = job.counts.get("records_read", 0) + job.counts.get("persons_read", 0)
    calls = dict(job.calls)
    return {
        "id": job.id,
        "status": job.status.value,
        "phase": job.phase.value,
        "steps": job.steps,
        "options": job.options.model_dump(mode="json"),
        "started_at": job.created_at.isoformat(timespec="seconds"),
        "updated_at": job.updated_at.isoformat(timespec="seconds"),
        "finished_at": job.finished_at.isoformat(timespec="seconds") if job.finished_at else None,
        "error": job.error,
        "phases": {phase.value: job.progress[phase].figures() for phase in ORDER if phase in job.progress},
        "counts": dict(sorted(job.counts.items())),
        "fields": job.fields,
        "samples": job.samples,
        "calls": calls,
        "calls_per_record": {k: round(v / records, 5) for k, v in calls.items()} if records else {},
    }


def backfill_progress(state: StateStore) -> dict[str, Any] | None:
    """The current (or last) backfill job's progress, or None when none has run."""
    loaded = JobStore(state).load()
    return progress_of(loaded[0]) if loaded else None


def console_progress(state: StateStore) -> InitialSyncProgress | None:
    """The job's progress in the shape the operator console shows (its ``ProgressSource``):
    the current phase's done of total; a preview counts as done, a stop by a fault as failed."""
    loaded = JobStore(state).load()
    if loaded is None:
        return None
    job = loaded[0]
    progress = job.progress.get(job.phase)
    states = {Status.RUNNING: "running", Status.FAILED: "failed"}
    position = ORDER.index(job.phase) + 1 if job.phase in ORDER else len(ORDER)
    detail = f"phase {min(position, len(ORDER) - 1)} of {len(ORDER) - 1}"
    if job.status is Status.PREVIEWED:
        detail = "preview done: nothing was written"
    elif job.error:
        detail = job.error
    return InitialSyncProgress(
        state=states.get(job.status, "done"),
        phase="preview" if job.status is Status.PREVIEWED else job.phase.value,
        done=progress.done if progress is not None else 0,
        total=progress.total if progress is not None else None,
        started_at=job.created_at,
        updated_at=job.updated_at,
        detail=detail,
    )
