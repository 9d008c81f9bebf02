"""What the console counts, per hour, entity and direction: the names of the tallies.

The worker adds one batch's tallies in one write (``OperationsStore.add_tallies``); change
capture adds its runs'. The status page reads a day of tallies (24 rows per figure at most), never
the sync log, so its cost does not grow with the log.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from shared.notices import Notice, Source
from shared.ports import Tally

SYNCED = "synced"  # a record written (updated) on the other side
CREATED = "created"  # a record created on the other side
FAILED = "failed"  # a write refused, or a value left out
COLLISION = "collision"  # + "_marketo" / "_dynamics": the side that won
PROCESSED = "processed"  # notices the worker took off the queue (the backlog's drain rate)
PARKED = "parked"
WEBHOOK = "webhook"  # notices queued by the Dataverse webhook
MARKETO_CALLS = "marketo_calls"
DATAVERSE_CALLS = "dataverse_calls"
NONE = "-"

TO_MARKETO = "to_marketo"
TO_DYNAMICS = "to_dynamics"


def collision_name(winner: str) -> str:
    return f"{COLLISION}_{winner}"


def lane(notice: Notice) -> tuple[str, str]:
    """The backlog row a notice waits in: Dynamics changes go to Marketo per lead or contact; a
    Marketo change goes to Dynamics for a person whose lead or contact the worker looks up."""
    if notice.source is Source.DYNAMICS:
        return notice.entity.value, TO_MARKETO
    return notice.entity.value, TO_DYNAMICS


class TallyCounter:
    """Counts gathered while a batch runs, handed to the store once at its end."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, entity: str, direction: str, name: str, n: int = 1) -> None:
        if n:
            self.counts[(entity or NONE, direction or NONE, name)] += n

    def tallies(self, at: datetime | None = None) -> list[Tally]:
        moment = at or datetime.now(UTC)
        return [Tally(moment, e, d, name, n) for (e, d, name), n in sorted(self.counts.items()) if n]
