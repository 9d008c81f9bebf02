"""The initial sync's progress, as the console shows it.

The contract with the initial sync (issue 13, being built beside the console): while a run goes
on, the job keeps one JSON record in the state store's checkpoints under ``PROGRESS_CHECKPOINT``
(``put_checkpoint``, under its etag), in the shape ``InitialSyncProgress.as_dict`` writes:

    {"state": "running" | "paused" | "done" | "failed", "phase": "<what it does now>",
     "done": <records handled>, "total": <records to handle, or null while counting>,
     "started_at": "<ISO 8601>", "updated_at": "<ISO 8601>", "detail": "<one line>"}

``read_progress`` is all the console needs; a job that keeps its progress elsewhere gives the
console a ``ProgressSource`` instead (``shared.bootstrap`` wires the one in use).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from shared.console import records
from shared.ports import StateStore

PROGRESS_CHECKPOINT = "initial-sync:progress"


@dataclass(frozen=True)
class InitialSyncProgress:
    state: str
    phase: str = ""
    done: int = 0
    total: int | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    detail: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def eta_seconds(self, now: datetime | None = None) -> float | None:
        """At the rate so far; None until something is done or while the total is unknown."""
        fraction = self.fraction
        if self.state != "running" or not fraction or self.started_at is None or fraction >= 1:
            return None
        elapsed = ((now or datetime.now(UTC)) - self.started_at).total_seconds()
        return max(0.0, elapsed / fraction - elapsed)

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "detail": self.detail,
        }


class ProgressSource(Protocol):
    def __call__(self) -> InitialSyncProgress | None: ...


def read_progress(state: StateStore) -> InitialSyncProgress | None:
    """The record the initial sync keeps, or None when none ever ran (or it is unreadable)."""
    data = records.read(state, PROGRESS_CHECKPOINT)
    if not isinstance(data.get("state"), str):
        return None
    total = data.get("total")
    return InitialSyncProgress(
        state=data["state"],
        phase=str(data.get("phase") or ""),
        done=int(data.get("done") or 0),
        total=int(total) if isinstance(total, int) else None,
        started_at=records.moment(data.get("started_at")),
        updated_at=records.moment(data.get("updated_at")),
        detail=str(data.get("detail") or ""),
    )
