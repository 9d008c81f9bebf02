"""The sync worker: turn a batch of notices into correct writes on both sides.

Reconcile, don't replay. A notice only says "this pair may be out of sync"; the worker reads the
current values of every person in the batch from both systems in bulk, decides per field with
``shared.reconcile`` against the shadow, writes only what changed in bulk, and advances the
shadow for what was really written. Duplicate, late and out-of-order notices are therefore
harmless, and the echo of our own write finds nothing to do.

One batch goes through these phases, each in its own module; each hands what it decided to
the next as a value (defined in ``batch``: ``Loaded``, ``Decision``, ``Unwritten``), and the
batch (``Batch``) holds the persons as observed:

1. ``grouping``: notices -> persons (links from the state store), echoes set aside (an echo
   also confirms the Marketo writes it reports);
2. ``loading`` -> ``Loaded``: Dynamics rows by id (250 a query) and Marketo persons by id (300 a
   call), following lead qualifications and merges on both sides (``merges``): the pairs they
   linked anew (``Linked``) and those settled already (``Settled``: a person merged away, a
   linked person Marketo did not return, held until its deletion is confirmed);
3. ``planning`` -> a ``Decision`` per linked person: ``Settled`` (deleted on one side, excluded
   by the sync filter) or ``Reconciled`` field by field (a new pair by the first-link rule),
   every value checked before it is sent (one that cannot be is left out and reported);
4. (while an initial sync runs) the batch's records claimed from it before any write, and the
   pairs it is writing now put back for later (``shared.backfill.fence``);
   ``linking`` -> the decisions of the pairs it makes: new Dynamics records link a person with
   the same email or create one; ``auto_create`` -> the same for new Marketo persons, which get
   a lead only when the mapping opts in;
5. ``writes`` (the decisions) -> ``Unwritten``: Marketo Sync Leads (300 a call), then Dataverse
   ``$batch`` (ETag-guarded rows);
6. here, from the decisions and ``Unwritten``: links, shadows (conditional on their etag), a
   ``confirm`` notice for the persons whose Marketo values are to be seen taken
   (MDSYNC_CONFIRM_SECONDS later; their echo usually confirms them first, and the notice then
   costs no call), the Activity Log, the sync log, and the notices to try again (``retry``) or
   to park;
7. for the operator console, in one write each: the batch's hourly tallies, its error records
   (and the persons whose errors it resolved), the API budgets it saw.

While the console's pause switch is on, a batch is held instead (``shared.console.pause``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.console import budgets as console_budgets
from shared.console import tallies as t
from shared.console.failures import REFUSED
from shared.console.pause import PauseSwitch
from shared.dataverse.client import DataverseClient
from shared.errors import (
    ConflictError,
    MdsyncError,
    PermanentError,
    ServiceUnavailableError,
    TransientError,
)
from shared.mapping import FieldMapping, Side
from shared.marketo.client import MarketoClient
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Link, NoticeQueue, OperationsStore, Shadow, StateStore, WriteFence
from shared.sync.activity_log import ActivityLog
from shared.sync.auto_create import LeadCreator
from shared.sync.batch import Batch, Decision, Reconciled, Unwritten, unlink_reason
from shared.sync.grouping import drop_echoes, group
from shared.sync.journal import BatchResult, Journal
from shared.sync.linking import OrphanLinker
from shared.sync.loading import Loader
from shared.sync.merges import MergeFollower
from shared.sync.planning import Planner
from shared.sync.reads import DynamicsReader, MarketoReader
from shared.sync.retry import NO_ONE, Rescheduler, RetryPolicy
from shared.sync.writes import Writer

log = logging.getLogger(__name__)


class SyncWorker:
    def __init__(
        self,
        marketo: MarketoClient,
        dataverse: DataverseClient,
        state: StateStore,
        queue: NoticeQueue,
        mapping: FieldMapping,
        *,
        activity_log: ActivityLog | None = None,
        max_attempts: int = 8,
        base_delay_seconds: float = 5.0,
        max_delay_seconds: float = 900.0,
        vanished_retry_seconds: float = 300.0,
        confirm_seconds: float = 180.0,
        operations: OperationsStore | None = None,
        pause: PauseSwitch | None = None,
        fence: WriteFence | None = None,
    ) -> None:
        self.marketo = marketo
        self.dataverse = dataverse
        self.state = state
        self.mapping = mapping
        self.activity_log = activity_log or ActivityLog(marketo)
        self.policy = RetryPolicy(max_attempts, base_delay_seconds, max_delay_seconds)
        self.rescheduler = Rescheduler(queue, state, self.policy)
        self.vanished_retry_seconds = vanished_retry_seconds
        self.confirm_seconds = confirm_seconds
        self.queue = queue
        self.marketo_reader = MarketoReader(marketo, mapping)
        self.dynamics_reader = DynamicsReader(dataverse, mapping)
        columns = self.dynamics_reader.columns
        merges = MergeFollower(marketo, self.dynamics_reader, state, mapping)
        self.planner = Planner(mapping, self.dynamics_reader, self.marketo_reader)
        self.loader = Loader(
            self.marketo_reader,
            self.dynamics_reader,
            state,
            mapping,
            merges,
            planner=self.planner,
            vanished_retry_seconds=vanished_retry_seconds,
        )
        self.linker = OrphanLinker(
            marketo, self.marketo_reader, self.dynamics_reader, state, mapping=mapping, planner=self.planner
        )
        self.lead_creator = LeadCreator(dataverse, self.dynamics_reader, mapping, self.planner, columns)
        self.writer = Writer(marketo, dataverse)
        self.operations = operations
        self.pause = pause
        self.fence = fence

    @property
    def max_attempts(self) -> int:
        return self.policy.max_attempts

    def delay_for(self, attempt: int, exc: TransientError) -> float:
        return self.policy.delay_for(attempt, exc)

    # --- entry point ----------------------------------------------------------------------------

    def process(self, notices: Sequence[Notice]) -> BatchResult:
        """Sync the persons these notices are about. Raises only when a failed batch could not
        be put back on the queue (the host then abandons the messages: nothing is lost)."""
        if self.pause is not None and notices and self.pause.current().paused:
            # Raises when the queue refuses the held copies: the batch is then not completed.
            return BatchResult(notices=len(notices), held=self.pause.hold(notices, self.queue))
        journal = Journal(len(notices))
        calls = (self.marketo.calls.on_this_thread, self.dataverse.calls.on_this_thread)
        batch = Batch(list(notices))
        try:
            batch = self._sync(notices, journal)
        except TransientError as exc:
            # Reads or the state store failed before the batch could be decided: all of it later.
            log.warning("batch of %d notices hit a transient fault: %s", len(notices), exc)
            batch.defer(notices, exc)
        except PermanentError as exc:
            # Not a person's data (that is handled per person): a permission, a broken request.
            log.error("batch of %d notices failed: %s", len(notices), exc)
            batch.park(notices, str(exc))
        self._settle(batch, journal)
        result = journal.result
        result.persons = batch.persons
        result.marketo_calls = self.marketo.calls.on_this_thread - calls[0]
        result.dataverse_calls = self.dataverse.calls.on_this_thread - calls[1]
        journal.emit()
        self._tell_console(notices, batch, journal)
        return result

    def _sync(self, notices: Sequence[Notice], journal: Journal) -> Batch:
        batch = group(notices, self.state, journal)
        drop_echoes(batch, self.mapping, self.dynamics_reader.entity, journal)
        loaded = self.loader.load(batch, journal)
        planned = self.planner.plan_all(batch, loaded, journal)
        claim = self._claim(batch)
        try:
            planned = {marketo_id: d for marketo_id, d in planned.items() if marketo_id in batch.pairs}
            linked = self.linker.link(batch, planned, journal)
            created = self.lead_creator.create(batch, loaded.people, journal)
            decisions = {**planned, **linked, **created}
            unwritten = self.writer.write(batch, decisions, journal)
            self._store_links(batch, decisions, journal)
            self._store_shadows(batch, decisions, unwritten)
        finally:
            self._release(claim)
        self._ask_confirmation(batch, decisions, unwritten)
        return batch

    def _claim(self, batch: Batch) -> str | None:
        """Before the first write: claim the batch's records from the initial sync, and put back
        for later the pairs it is writing now (shared/backfill/fence.py: its writes and ours
        never cross between a check and a write)."""
        if self.fence is None:
            return None
        records: list[tuple[str, str, int | None]] = [
            (p.entity, p.dynamics_id, p.marketo_id) for p in batch.pairs.values()
        ]
        records += [(o.entity, o.record_id, None) for o in batch.orphans.values()]
        claimed = self.fence.claim(records)
        busy = ServiceUnavailableError("the initial sync is writing this record now", service="backfill")
        for marketo_id, pair in list(batch.pairs.items()):
            if (pair.entity, pair.dynamics_id.lower()) in claimed.busy:
                batch.defer_pair(pair, busy)
                del batch.pairs[marketo_id]
        for key, orphan in list(batch.orphans.items()):
            if (orphan.entity, orphan.record_id.lower()) in claimed.busy:
                batch.defer(orphan.notices, busy, orphan.who)
                del batch.orphans[key]
        return claimed.name

    def _release(self, claim: str | None) -> None:
        """The batch's links and shadows are stored (or it failed): its claim ends. One left
        behind expires by itself and only holds those records back from the backfill."""
        if claim is None or self.fence is None:
            return
        try:
            self.fence.release(claim)
        except MdsyncError as exc:
            log.warning("could not release this batch's claim on the backfill's fence: %s", exc)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _store_links(self, batch: Batch, decisions: Mapping[int, Decision], journal: Journal) -> None:
        for link in batch.dropped_links:
            # The record moved to another person (a merge): its old link ends first.
            self.state.delete_link(link)
            self.state.delete_shadow(link.marketo_id)
        for pair in list(batch.pairs.values()):
            decision = decisions.get(pair.marketo_id)
            unlink = unlink_reason(decision)
            if unlink and pair.marketo_id not in batch.deferred:
                self.state.delete_link(pair.link)
                self.state.delete_shadow(pair.marketo_id)
                journal.unlinked(pair.link, unlink)
            elif decision is not None and decision.linked is not None:
                try:
                    self.state.put_link(replace(pair.link, etag=""))
                except ConflictError as exc:
                    # Linked to another person meanwhile (a concurrent run, the flow step).
                    journal.failed(pair.link, "conflict", exc.code or "conflict", exc.message, activity=False)
                    del batch.pairs[pair.marketo_id]

    def _store_shadows(self, batch: Batch, decisions: Mapping[int, Decision], unwritten: Unwritten) -> None:
        """Conditional on the etags read: when another run moved a shadow meanwhile, this run's
        view of that person is stale, and the person is tried again."""
        self._store_confirmations(batch)
        wanted = {
            p.marketo_id: s
            for p in batch.pairs.values()
            if (d := decisions.get(p.marketo_id)) is not None
            and not unlink_reason(d)
            and (s := p.shadow_to_store(d, unwritten))
        }
        if not wanted:
            return
        try:
            self.state.put_shadows(list(wanted.values()))
        except ConflictError:
            stored = self.state.get_shadows(wanted)
            for marketo_id, shadow in wanted.items():
                if _values(stored.get(marketo_id)) != shadow.values:
                    pair = batch.pairs[marketo_id]
                    exc = ServiceUnavailableError("shadow changed by a concurrent run", service="state")
                    batch.defer(pair.notices, exc, pair.link)

    def _ask_confirmation(
        self, batch: Batch, decisions: Mapping[int, Decision], unwritten: Unwritten
    ) -> None:
        """A ``confirm`` notice per person whose mapped values were written to Marketo: a write
        of values Marketo did not take has no echo, and this is when that shows. Not sent, the
        refusal is still found at the person's next change (or echo). 0 seconds: none sent."""
        if self.confirm_seconds <= 0:
            return
        now = datetime.now(UTC)
        notices = [
            Notice(
                source=Source.MARKETO,
                entity=Entity.PERSON,
                record_id=str(p.marketo_id),
                kind=Kind.CONFIRM,
                occurred_at=now,
                actor="mdsync",
                own_write=True,
            )
            for p in batch.pairs.values()
            if isinstance(r := decisions.get(p.marketo_id), Reconciled)
            and p.marketo_id not in unwritten.marketo
            and p.marketo_id not in batch.deferred
            and {d.field.marketo for d in r.plan.towards(Side.MARKETO)} - r.dropped
        ]
        if not notices:
            return
        try:
            self.queue.schedule(notices, now + timedelta(seconds=self.confirm_seconds))
        except Exception as exc:  # a lost confirmation only delays a report, never a value
            log.warning("could not queue %d confirmations: %s", len(notices), exc)

    def _store_confirmations(self, batch: Batch) -> None:
        """Echoes confirmed some Marketo writes; a shadow moved meanwhile keeps them unconfirmed
        (harmless: the next reconcile looks at Marketo's value)."""
        if batch.confirmed:
            try:
                self.state.put_shadows(batch.confirmed)
            except ConflictError:
                log.info("a confirmed shadow moved meanwhile; the next reconcile confirms it")

    def _settle(self, batch: Batch, journal: Journal) -> None:
        """Activity Log, sync log, retries and parking. Raises if the queue cannot take the
        retries: the host abandons the batch and nothing is lost."""
        self._record_failures(journal)
        self.rescheduler.reschedule(batch.retry.values(), journal)
        self.rescheduler.park(batch.give_up.values(), journal)
        if journal.entries:
            self.state.append_log(journal.entries)

    def _tell_console(self, notices: Sequence[Notice], batch: Batch, journal: Journal) -> None:
        """The batch's figures for the operator console, in one write each. A failure here is
        logged: the figures are for reading, the sync itself is done and recorded."""
        if self.operations is None:
            return
        result = journal.result
        for notice in notices:
            journal.tallies.add(*t.lane(notice), t.PROCESSED)
        journal.tallies.add(t.NONE, t.NONE, t.MARKETO_CALLS, result.marketo_calls)
        journal.tallies.add(t.NONE, t.NONE, t.DATAVERSE_CALLS, result.dataverse_calls)
        synced = {m for m in batch.pairs if m and m not in batch.deferred}
        try:
            self.operations.add_tallies(journal.tallies.tallies())
            self.operations.record_errors(journal.errors)
            if synced - journal.failed_persons:
                self.operations.resolve_errors(synced - journal.failed_persons, [REFUSED])
        except MdsyncError as exc:
            log.warning("the console's figures for this batch were not written: %s", exc)
        limiter = getattr(self.marketo, "limiter", None)
        if limiter is not None:
            console_budgets.note_batch(
                self.state,
                marketo_window=limiter.in_window(),
                marketo_limit=limiter.max_calls,
                dataverse=getattr(self.dataverse, "rate_headers", None),
            )

    def _record_failures(self, journal: Journal) -> None:
        if not journal.failures:
            return
        try:
            not_taken = self.activity_log.record(journal.failures)
        except (TransientError, PermanentError) as exc:
            # The sync log still has them; the Activity Log is where marketers look first.
            log.warning(
                "could not write %d failures to Marketo Activity Logs: %s", len(journal.failures), exc
            )
            journal.note(NO_ONE, "failed", f"Activity Log write failed: {exc}")
            return
        for failure, why in not_taken:
            who = Link(failure.marketo_id, failure.entity, failure.dynamics_id or "")
            journal.note(who, "failed", f"this failure could not be added to the Activity Log: {why}")


def _values(shadow: Shadow | None) -> dict[str, object] | None:
    return dict(shadow.values) if shadow is not None else None
