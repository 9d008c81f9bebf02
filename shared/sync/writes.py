"""Bulk writes and what became of each record.

Marketo: one Sync Leads call per 300 persons (``updateOnly`` by id); each record's outcome comes
back on its own. Dataverse: one ``$batch`` per ``DATAVERSE_CHUNK`` rows, each row its own PATCH
with ``If-Match`` set to the ETag the worker read, and ``odata.continue-on-error``. A ``$batch``
counts as one request for the service-protection limits, like UpdateMultiple, but unlike it each
row succeeds or fails alone, and the ETag closes the lost-update window: a user's edit landing
between the worker's read and its write makes that row answer 412, so the person is read again
and the edit takes part in the collision rule instead of being overwritten.

Outcomes: written (the shadow may advance); refused for the person's data (sync log and the
person's Activity Log, not retried blindly); transient (the notices are rescheduled); refused for
any other reason (parked, replayable). A call refused as a whole for its content is split until
the refused person stands alone (``split``): the others are written, and that person's refusal
is reported on them and their notices parked.

The writes carry out the planned decisions (``shared.sync.batch.Decision``), one
:class:`Outgoing` per pair and side; what could not be written comes back as
:class:`~shared.sync.batch.Unwritten`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.dataverse.client import DataverseClient
from shared.dataverse.models import BatchRequest, BatchResponse
from shared.dataverse.odata import ENTITY_SETS
from shared.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    ServiceError,
    ServiceUnavailableError,
    TransientError,
    ValidationError,
)
from shared.marketo.client import MarketoClient
from shared.marketo.models import PushResult
from shared.reconcile import Action, FieldDecision
from shared.sync.batch import Batch, Decision, Pair, Reconciled, Unwritten
from shared.sync.journal import Journal
from shared.sync.split import Piece, Refusal, per_item, refuse, send_split

# A $batch takes up to 1,000 requests, and a worker batch holds at most 900 notices
# (host.json maxMessageBatchSize): one $batch per entity per batch.
DATAVERSE_CHUNK = 1_000
PERSON_GONE = "1004"


T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """One pair's write to one side: the values decided for it, and the plan's decisions that
    write that side (the sync log says what each write did)."""

    pair: Pair
    changes: Mapping[str, Any]
    decisions: tuple[FieldDecision, ...] = ()

    @classmethod
    def to_marketo(cls, pair: Pair, decision: Decision) -> Outgoing:
        plan = decision.plan.writes(Action.TO_MARKETO) if isinstance(decision, Reconciled) else ()
        return cls(pair, decision.marketo_changes, plan)

    @classmethod
    def to_dynamics(cls, pair: Pair, decision: Decision) -> Outgoing:
        plan = decision.plan.writes(Action.TO_DYNAMICS) if isinstance(decision, Reconciled) else ()
        return cls(pair, decision.dynamics_changes, plan)


class Writer:
    def __init__(self, marketo: MarketoClient, dataverse: DataverseClient) -> None:
        self.marketo = marketo
        self.dataverse = dataverse

    def write(self, batch: Batch, decisions: Mapping[int, Decision], journal: Journal) -> Unwritten:
        """Write what was decided for each pair, Marketo first, then Dataverse; returns what
        could not be written, per side."""
        pairs = [(p, decisions[m]) for m, p in batch.pairs.items() if m in decisions]
        to_marketo = [
            Outgoing.to_marketo(p, d) for p, d in pairs if d.marketo_changes and p.marketo is not None
        ]
        to_dynamics = [
            Outgoing.to_dynamics(p, d) for p, d in pairs if d.dynamics_changes and p.dynamics is not None
        ]
        return Unwritten(
            self.write_marketo(batch, to_marketo, journal), self.write_dynamics(batch, to_dynamics, journal)
        )

    # --- Marketo --------------------------------------------------------------------------------

    def write_marketo(self, batch: Batch, writes: list[Outgoing], journal: Journal) -> frozenset[int]:
        """The persons whose Marketo write did not happen."""
        if not writes:
            return frozenset()

        def push(chunk: list[Outgoing]) -> list[PushResult]:
            records = [{"id": w.pair.marketo_id, **w.changes} for w in chunk]
            return self.marketo.push_leads(records, action="updateOnly", lookup_field="id")

        answered = self._split_call(batch, writes, journal, push, to_marketo=True)
        written = {
            w.pair.marketo_id for w, result in answered if self._marketo_outcome(batch, w, result, journal)
        }
        return frozenset(w.pair.marketo_id for w in writes) - written

    def _marketo_outcome(
        self, batch: Batch, write: Outgoing, result: PushResult | None, journal: Journal
    ) -> bool:
        """Whether the person was written; if not, deferred or reported."""
        pair = write.pair
        if result is not None and result.id is not None:
            journal.wrote(pair.link, "to_marketo", write.changes, write.decisions, pair.notices)
            return True
        reasons = result.reasons if result is not None else ()
        if result is None or any(r.code == PERSON_GONE for r in reasons):
            # No answer for it, or the person vanished since it was read: look again later.
            batch.defer_pair(
                pair,
                ServiceUnavailableError("person not updated; will read it again", service="marketo"),
            )
            return False
        code = reasons[0].code if reasons else result.status
        message = "; ".join(f"{r.code} {r.message}" for r in reasons) or result.status
        journal.failed(pair.link, "marketo", code, message, write.changes, direction="to_marketo")
        return False

    # --- Dataverse ------------------------------------------------------------------------------

    def write_dynamics(self, batch: Batch, writes: list[Outgoing], journal: Journal) -> frozenset[int]:
        """The persons whose Dynamics write did not happen."""
        unwritten: set[int] = set()
        for entity in ENTITY_SETS:
            rows = [w for w in writes if w.pair.entity == entity]
            for start in range(0, len(rows), DATAVERSE_CHUNK):
                unwritten |= self._update(batch, entity, rows[start : start + DATAVERSE_CHUNK], journal)
        return frozenset(unwritten)

    def _update(self, batch: Batch, entity: str, writes: list[Outgoing], journal: Journal) -> set[int]:
        entity_set = ENTITY_SETS[entity]

        def send(chunk: list[Outgoing]) -> list[BatchResponse]:
            parts = [
                BatchRequest(
                    "PATCH",
                    f"{entity_set}({w.pair.dynamics_id})",
                    body=dict(w.changes),
                    headers={"If-Match": str((w.pair.dynamics or {}).get("@odata.etag") or "*")},
                )
                for w in chunk
            ]
            return self.dataverse.batch(parts, continue_on_error=True)

        answered = self._split_call(batch, writes, journal, send, to_marketo=False)
        written = {
            w.pair.marketo_id for w, answer in answered if self._row_outcome(batch, w, answer, journal)
        }
        return {w.pair.marketo_id for w in writes} - written

    def _row_outcome(
        self, batch: Batch, write: Outgoing, answer: BatchResponse | None, journal: Journal
    ) -> bool:
        """Whether the row was written; if not, deferred, reported or parked."""
        pair = write.pair
        if answer is not None and answer.error is None:
            journal.wrote(pair.link, "to_dynamics", write.changes, write.decisions, pair.notices)
            return True
        error = answer.error if answer is not None else None
        if error is None or isinstance(error, TransientError):
            batch.defer_pair(
                pair, error or ServiceUnavailableError("no answer for the row", service="dataverse")
            )
        elif isinstance(error, ConflictError) and answer is not None and answer.status == 412:
            # Changed in Dynamics since we read it: read both sides again, soon.
            batch.defer_pair(
                pair,
                ServiceUnavailableError(
                    f"{pair.entity} changed in Dynamics while syncing; reading it again",
                    service="dataverse",
                    retry_after=1.0,
                ),
            )
        elif isinstance(error, ValidationError | NotFoundError | ConflictError):
            self._refused_row(batch, write, error, journal)
        elif isinstance(error, PermanentError):
            self._refused_call(batch, write, error, journal, to_marketo=False)
        else:
            self._refused_row(batch, write, ValidationError(str(error), service="dataverse"), journal)
        return False

    def _refused_row(self, batch: Batch, write: Outgoing, exc: PermanentError, journal: Journal) -> None:
        pair = write.pair
        if isinstance(exc, NotFoundError):
            # Deleted since it was read: the next attempt sees it gone and unlinks.
            batch.defer_pair(
                pair,
                ServiceUnavailableError(f"{pair.entity} not found on update", service="dataverse"),
            )
            return
        fields = getattr(exc, "fields", ()) or tuple(write.changes)
        # With the values sent: the console's error list shows what was refused.
        sent = {name: write.changes.get(name) for name in fields}
        journal.failed(pair.link, "rejected", exc.code or "dataverse", exc.message, sent)

    def _split_call(
        self,
        batch: Batch,
        writes: list[Outgoing],
        journal: Journal,
        call: Callable[[list[Outgoing]], list[T]],
        *,
        to_marketo: bool,
    ) -> list[tuple[Outgoing, T | None]]:
        """Each write with its answer from the call that made it, splitting a call refused for its
        content. Writes whose call failed are settled here and left out: deferred (transient),
        refused alone (reported and parked), or parked (refused for another reason)."""
        answered: list[tuple[Outgoing, T | None]] = []
        for piece in send_split(writes, call):
            if piece.answer is not None:
                answered += zip(piece.items, per_item(piece.answer, piece.items), strict=True)
            else:
                self._call_failed(batch, piece, journal, to_marketo=to_marketo)
        return answered

    def _call_failed(
        self, batch: Batch, piece: Piece[Outgoing, list[T]], journal: Journal, *, to_marketo: bool
    ) -> None:
        error = piece.error
        assert error is not None
        for write in piece.items:
            if isinstance(error, TransientError):
                batch.defer_pair(write.pair, error)
            elif piece.refused_alone:
                self._refused_alone(batch, write, Refusal.of(error), journal, to_marketo=to_marketo)
            else:
                self._refused_call(batch, write, error, journal, to_marketo=to_marketo)

    def _refused_alone(
        self, batch: Batch, write: Outgoing, refusal: Refusal, journal: Journal, *, to_marketo: bool
    ) -> None:
        """The service refused the call for this person's values alone: their data."""
        pair = write.pair
        target = f"Marketo person {pair.marketo_id}" if to_marketo else f"{pair.entity} {pair.dynamics_id}"
        record = f"{target} (writing {', '.join(sorted(write.changes))})"
        direction = "to_marketo" if to_marketo else "to_dynamics"
        refuse(
            batch,
            journal,
            pair.link,
            pair.notices,
            refusal,
            record=record,
            fields=write.changes,
            direction=direction,
        )

    def _refused_call(
        self, batch: Batch, write: Outgoing, exc: ServiceError, journal: Journal, *, to_marketo: bool
    ) -> None:
        """Refused for a reason that is not this person's data (a permission, a broken request):
        the notices are parked, to replay once the cause is fixed."""
        pair = write.pair
        direction = "to_marketo" if to_marketo else "to_dynamics"
        code = exc.code or exc.service
        journal.failed(
            pair.link, "refused", code, exc.message, write.changes, direction=direction, activity=False
        )
        batch.park(pair.notices, str(exc), pair.link)
