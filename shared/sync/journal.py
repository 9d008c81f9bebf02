"""What a batch did, told three ways: the sync log (per person, for ``mdsync log``), the failures
for the persons' Activity Logs in Marketo, and the counters (the batch result and the metrics).

The sync log says what changed (field names), in which direction, which side won each collision
and why, and every failure with the service's own code and message. Messages are redacted: no
email address reaches the log. A collision's two values and a refused value are kept for the
operator console only (the entry's ``values``, the error list), never in the application's logs.

For the console, a batch also counts what it did per entity and direction (``tallies``) and
lists its failures as error records (``errors``); the worker stores both once per batch.

A plan made on trial (a pair whose notices carry Marketo's side, ``loading``) records into a
journal of its own, :meth:`Journal.trial`, which holds back its log lines and metrics: a trial
thrown away leaves no trace, and a trial kept is adopted (:meth:`Journal.adopt`) by the batch's
journal, so what it recorded is reported and counted once, as if planned there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import partial

from shared import telemetry
from shared.console import failures as console_failures
from shared.console import tallies as t
from shared.notices import FieldValue, Notice
from shared.ports import Link, LogEntry, SyncError
from shared.reconcile import FieldDecision
from shared.redaction import redact
from shared.sync.activity_log import Failure

log = logging.getLogger(__name__)

# The ``reason`` class of a refusal that is not about the person's data (a permission, a broken
# request): its notices are parked, and the console lists them as such.
NOT_THE_DATA = "refused"


@dataclass
class BatchResult:
    notices: int = 0
    persons: int = 0
    skipped_echoes: int = 0
    to_marketo: int = 0
    to_dynamics: int = 0
    created_in_marketo: int = 0
    created_in_dynamics: int = 0
    linked: int = 0
    unlinked: int = 0
    collisions: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    rescheduled: int = 0
    parked: int = 0
    marketo_calls: int = 0
    dataverse_calls: int = 0
    # Notices put back on the queue unprocessed because the sync is paused.
    held: int = 0

    def add(self, other: BatchResult) -> None:
        """Add ``other``'s counts to these."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                for key, n in theirs.items():
                    _count(mine, key, n)
            else:
                setattr(self, f.name, mine + theirs)


def _count(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


class Journal:
    def __init__(self, notices: int) -> None:
        self.result = BatchResult(notices=notices)
        self.entries: list[LogEntry] = []
        self.failures: list[Failure] = []
        self.tallies = t.TallyCounter()
        self.errors: list[SyncError] = []
        # Persons whose sync failed in this batch: their open errors stay open.
        self.failed_persons: set[int] = set()
        self._writes: list[tuple[str, str, list[Notice]]] = []
        # A trial's log lines and metrics, held until it is adopted; None: they go out at once.
        self._held: list[Callable[[], None]] | None = None

    @classmethod
    def trial(cls) -> Journal:
        """A journal for a plan made on trial: it records as any journal does, but its log lines
        and metrics wait for :meth:`adopt` (a trial thrown away has told no one anything)."""
        journal = cls(0)
        journal._held = []
        return journal

    def adopt(self, trial: Journal) -> None:
        """Make what ``trial`` recorded this journal's own, once: its sync-log entries, failures,
        error records, tallies and counts, and its held log lines and metrics, let out now."""
        self.result.add(trial.result)
        self.entries += trial.entries
        self.failures += trial.failures
        self.errors += trial.errors
        self.tallies.counts.update(trial.tallies.counts)
        self.failed_persons |= trial.failed_persons
        self._writes += trial._writes
        held, trial._held = trial._held or [], []
        for effect in held:
            self._out(effect)

    def _out(self, effect: Callable[[], None]) -> None:
        """A log line or a metric: out now, or held while this journal is a trial."""
        if self._held is None:
            effect()
        else:
            self._held.append(effect)

    # --- the sync log ---------------------------------------------------------------------------

    def note(
        self,
        who: Link,
        action: str,
        detail: str,
        fields: Iterable[str] = (),
        notices: Iterable[Notice] = (),
        *,
        values: Mapping[str, FieldValue] | None = None,
    ) -> None:
        notice_ids = [n.dedup_id for n in notices]
        entry = LogEntry(
            who.marketo_id or None,
            who.dynamics_id or None,
            who.entity,
            action,
            redact(detail),
            tuple(fields),
            datetime.now(UTC),
            notice_ids[0] if notice_ids else None,
            dict(values or {}),
        )
        self.entries.append(entry)
        person = f"marketo:{who.marketo_id}" if who.marketo_id else f"{who.entity}:{who.dynamics_id}"
        self._out(
            partial(
                log.info,
                "%s %s %s:%s notices=%s: %s",
                action,
                person,
                who.entity,
                who.dynamics_id or "-",
                ",".join(notice_ids) or "-",
                entry.detail,
                extra={"person_key": person, "notice_ids": notice_ids, "sync_action": action},
            )
        )

    def wrote(
        self,
        who: Link,
        direction: str,
        written: Iterable[str],
        decisions: Iterable[FieldDecision],
        notices: list[Notice],
    ) -> None:
        """One successful write to one side: which fields, and why each one moved."""
        names = sorted(written)
        why = [f"{d.field.marketo} ({d.reason})" for d in decisions]
        target = "Marketo" if direction == "to_marketo" else "Dynamics"
        detail = f"wrote to {target}: " + (", ".join(why) if why else "link fields")
        others = [n for n in names if not any(n in (d.field.marketo, d.field.dynamics) for d in decisions)]
        if why and others:
            detail += f"; link fields {', '.join(others)}"
        self.note(who, direction, detail, names, notices)
        if direction == "to_marketo":
            self.result.to_marketo += 1
        else:
            self.result.to_dynamics += 1
        self.tallies.add(who.entity, direction, t.SYNCED)
        self._writes.append((direction, who.entity, notices))

    def collision(self, who: Link, decision: FieldDecision) -> None:
        winner = decision.winner.value if decision.winner else "?"
        _count(self.result.collisions, winner)
        self._out(partial(telemetry.collisions.add, 1, {"winner": winner, "entity": who.entity}))
        # The winner's value travels to the loser's side.
        direction = t.TO_DYNAMICS if winner == "marketo" else t.TO_MARKETO
        self.tallies.add(who.entity, direction, t.collision_name(winner))
        # A collision found by the echo of mdsync's write: Marketo's side is what the write overwrote.
        marketo = decision.overwritten[0] if decision.overwritten else decision.marketo
        values = {"marketo": marketo, "dynamics": decision.dynamics, "winner": winner}
        self.note(
            who,
            "collision",
            f"{decision.field.marketo}: {decision.reason}",
            (decision.field.marketo,),
            values=values,
        )

    def failed(
        self,
        who: Link,
        reason: str,
        code: str,
        message: str,
        fields: Iterable[str] | Mapping[str, FieldValue] = (),
        *,
        direction: str = "to_dynamics",
        activity: bool = True,
    ) -> None:
        """A write that was refused (or would be). ``reason`` is a small fixed class for the
        metrics; ``activity`` puts it on the person's Activity Log in Marketo too. ``fields`` may
        map each field to the value sent: the console's error list shows it."""
        names = tuple(fields)
        values = dict(fields) if isinstance(fields, Mapping) else {}
        target = "Dynamics" if direction == "to_dynamics" else "Marketo"
        self.note(who, "failed", f"{target} refused the write [{code}]: {message}", names)
        if reason != NOT_THE_DATA:
            # (Refusals that are not about the data park their notices: listed as parked.)
            self.errors += console_failures.refusals(
                who,
                target=target,
                code=code,
                message=redact(message),
                fields=names,
                values=values,
                at=datetime.now(UTC),
            )
        self.tallies.add(who.entity, direction, t.FAILED)
        if who.marketo_id:
            self.failed_persons.add(who.marketo_id)
        if activity and who.marketo_id:
            self.failures.append(
                Failure(who.marketo_id, who.entity, who.dynamics_id or None, code, message, names, direction)
            )
        self.result.failures += 1
        _count(self.result.failure_reasons, reason)
        self._out(partial(telemetry.failures.add, 1, {"reason": reason, "direction": direction}))

    def linked(self, who: Link, action: str, detail: str) -> None:
        self.note(who, action, detail)
        self.result.linked += 1

    def unlinked(self, who: Link, detail: str) -> None:
        self.note(who, "unlinked", detail)
        self.result.unlinked += 1

    def created(self, who: Link, direction: str, detail: str, fields: Iterable[str]) -> None:
        action = "created_in_marketo" if direction == "to_marketo" else "created_in_dynamics"
        self.note(who, action, detail, fields)
        if direction == "to_marketo":
            self.result.created_in_marketo += 1
        else:
            self.result.created_in_dynamics += 1
        self.tallies.add(who.entity, direction, t.CREATED)
        self._out(partial(telemetry.writes.add, 1, {"direction": direction, "kind": "create"}))

    def gave_up(self, who: Link | None, notice: Notice, reason: str) -> None:
        """A notice parked: listed in the console's errors until it is replayed."""
        self.errors.append(console_failures.parked(notice, redact(reason), who, datetime.now(UTC)))
        entity, direction = t.lane(notice)
        self.tallies.add(entity, direction, t.PARKED)
        if who is not None and who.marketo_id:
            self.failed_persons.add(who.marketo_id)

    # --- metrics --------------------------------------------------------------------------------

    def emit(self) -> None:
        """Batch-level metrics, once the batch is done (writes counted as they happened)."""
        now = datetime.now(UTC)
        telemetry.persons_synced.add(self.result.persons)
        for direction, entity, notices in self._writes:
            telemetry.writes.add(1, {"direction": direction, "kind": "update", "entity": entity})
            if notices:
                first = min(n.occurred_at for n in notices)
                telemetry.lag.record(max((now - first).total_seconds(), 0.0), {"direction": direction})
