"""The sync worker: turn a batch of notices into correct writes on both sides.

Reconcile, don't replay. A notice only says "this pair may be out of sync"; the worker reads the
current values of every person in the batch from both systems in bulk, decides per field with
``shared.reconcile`` against the shadow, writes only what changed in bulk, and advances the
shadow for what was really written. Duplicate, late and out-of-order notices are therefore
harmless, and the echo of our own write finds nothing to do.

One batch goes through these phases:

1. resolve links (state store) and load shadows;
2. read both sides: Marketo persons by id (300 per call), Dataverse rows by page;
3. decide per person: deleted on one side, qualified, excluded by the sync filter, or reconcile;
   new Dynamics records are linked to a Marketo person with the same email or create one;
4. write Marketo (push, 300 per call) and Dataverse (UpdateMultiple/CreateMultiple; a rejected
   batch is split to isolate the row Dataverse refuses);
5. store links, shadows and the sync log; write failures to the persons' Activity Logs.

A transient fault reschedules the affected notices with backoff (honouring Retry-After) and parks
them after the configured attempts; a permanent one is logged and not retried blindly.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.dataverse.client import DataverseClient
from shared.errors import PermanentError, TransientError, ValidationError
from shared.mapping import EntityMapping, FieldMapping, Side
from shared.marketo.client import MarketoClient
from shared.normalize import UnmappedOptionError, canonical, to_dynamics, to_marketo
from shared.notices import Entity, Notice, Source
from shared.ports import Link, LogEntry, NoticeQueue, ParkedNotice, Shadow, StateStore
from shared.reconcile import Action, Plan, initial_values, reconcile
from shared.sync.activity_log import ActivityLog, Failure
from shared.sync.reads import DynamicsReader, MarketoReader
from shared.sync.validation import describe, validate_write

log = logging.getLogger(__name__)

ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
QUALIFIED = 1  # lead statecode


@dataclass
class Pair:
    """One linked person in this batch."""

    link: Link
    notices: list[Notice] = field(default_factory=list)
    marketo: dict[str, Any] | None = None
    dynamics: dict[str, Any] | None = None
    plan: Plan | None = None
    marketo_changes: dict[str, Any] = field(default_factory=dict)
    dynamics_changes: dict[str, Any] = field(default_factory=dict)
    wrote_marketo: bool = True
    wrote_dynamics: bool = True
    done: bool = False


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
    rescheduled: int = 0
    parked: int = 0
    marketo_calls: int = 0
    dataverse_calls: int = 0


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
    ) -> None:
        self.marketo = marketo
        self.dataverse = dataverse
        self.state = state
        self.queue = queue
        self.mapping = mapping
        self.max_attempts = max_attempts
        self.base_delay = base_delay_seconds
        self.max_delay = max_delay_seconds
        self.activity_log = activity_log or ActivityLog(marketo)
        self.marketo_reader = MarketoReader(marketo, mapping)
        self.dynamics_reader = DynamicsReader(dataverse, mapping)

    # --- entry point ----------------------------------------------------------------------------

    def process(self, notices: Sequence[Notice]) -> BatchResult:
        run = _Run(self, notices)
        try:
            run.execute()
        except TransientError as exc:
            log.warning("batch of %d notices hit a transient fault: %s", len(notices), exc)
            run.reschedule(notices, exc)
        return run.result

    # --- retry policy ---------------------------------------------------------------------------

    def delay_for(self, attempt: int, exc: TransientError) -> float:
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 1.0), self.max_delay)
        backoff: float = self.base_delay * (2.0 ** min(attempt, 16))
        return min(backoff, self.max_delay) * random.uniform(0.8, 1.2)


class _Run:
    """The working state of one batch."""

    def __init__(self, worker: SyncWorker, notices: Sequence[Notice]) -> None:
        self.w = worker
        self.mapping = worker.mapping
        self.notices = list(notices)
        self.result = BatchResult(notices=len(notices))
        self.pairs: dict[int, Pair] = {}
        self.orphans: dict[tuple[str, str], list[Notice]] = {}
        self.marketo_orphans: dict[int, list[Notice]] = {}
        self.shadows: dict[int, Shadow] = {}
        self.created_shadows: dict[int, Shadow] = {}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {"lead": {}, "contact": {}}
        self.failures: list[Failure] = []
        self.log: list[LogEntry] = []
        self.new_links: list[Link] = []
        self.dropped_links: list[Link] = []
        self.retry: dict[str, tuple[Notice, TransientError]] = {}
        self._calls_before = (worker.marketo.calls.total, worker.dataverse.calls.total)

    # --- phases ---------------------------------------------------------------------------------

    def execute(self) -> None:
        self._resolve()
        self._skip_echoes()
        self._read()
        self._decide()
        self._link_orphans()
        self._write_marketo()
        self._write_dynamics()
        self._store()
        self._count_calls()

    def _resolve(self) -> None:
        marketo_ids = {int(n.record_id) for n in self.notices if n.source is Source.MARKETO}
        by_marketo = self.w.state.get_links_by_marketo(marketo_ids)
        for notice in self.notices:
            if notice.source is Source.MARKETO:
                mid = int(notice.record_id)
                if mid in by_marketo:
                    self._pair(by_marketo[mid]).notices.append(notice)
                else:
                    self.marketo_orphans.setdefault(mid, []).append(notice)
        for entity in ("lead", "contact"):
            ids = {
                n.record_id.lower()
                for n in self.notices
                if n.source is Source.DYNAMICS and n.entity.value == entity
            }
            origins = {
                n.originating_lead_id.lower()
                for n in self.notices
                if n.entity is Entity.CONTACT and n.originating_lead_id and entity == "lead"
            }
            links = self.w.state.get_links_by_dynamics(entity, ids | origins)
            for notice in self.notices:
                if notice.source is not Source.DYNAMICS or notice.entity.value != entity:
                    continue
                link = links.get(notice.record_id.lower())
                if link is not None:
                    self._pair(link).notices.append(notice)
                else:
                    self.orphans.setdefault((entity, notice.record_id.lower()), []).append(notice)
            for notice in self.notices:
                origin = (notice.originating_lead_id or "").lower()
                if entity == "lead" and origin in links:
                    # Qualification: the person follows its lead to the new contact.
                    self._relink(links[origin], notice.record_id.lower(), "lead qualified into contact")
                    self.orphans.pop(("contact", notice.record_id.lower()), None)
        self.shadows = self.w.state.get_shadows(self.pairs)
        self.result.persons = len(self.pairs) + len(self.orphans)

    def _pair(self, link: Link) -> Pair:
        pair = self.pairs.get(link.marketo_id)
        if pair is None or (pair.link.entity == "lead" and link.entity == "contact"):
            pair = self.pairs[link.marketo_id] = Pair(link, pair.notices if pair else [])
        return pair

    def _relink(self, old: Link, contact_id: str, why: str) -> None:
        new = Link(old.marketo_id, "contact", contact_id)
        pair = self._pair(old)
        pair.link = new
        self.new_links.append(new)
        self._log(new, "relinked", f"{why}: lead {old.dynamics_id} -> contact {contact_id}")
        self.result.linked += 1

    def _skip_echoes(self) -> None:
        """Our own writes come back as notices; when every reported value already equals the
        shadow there is nothing to read. Correctness does not depend on this: without the skip,
        the reconcile would find nothing to write either."""
        for mid, pair in list(self.pairs.items()):
            shadow = self.shadows.get(mid)
            if shadow and pair.notices and all(self._is_echo(n, pair.link, shadow) for n in pair.notices):
                del self.pairs[mid]
                self.result.skipped_echoes += len(pair.notices)

    def _is_echo(self, notice: Notice, link: Link, shadow: Shadow) -> bool:
        if not notice.own_write or notice.trimmed or notice.kind.value != "updated" or not notice.changes:
            return False
        entity = self.mapping.entity(link.entity)
        for name, change in notice.changes.items():
            side = Side.MARKETO if notice.source is Source.MARKETO else Side.DYNAMICS
            fmap = entity.by_marketo(name) if side is Side.MARKETO else entity.by_dynamics(name)
            if fmap is None or canonical(fmap, change.new, side) != shadow.values.get(fmap.marketo):
                return False
        return True

    def _read(self) -> None:
        auto = self.mapping.options.auto_create_in_dynamics
        marketo_ids = set(self.pairs) | (set(self.marketo_orphans) if auto else set())
        people = self.w.marketo_reader.by_ids(marketo_ids)
        for mid, pair in self.pairs.items():
            pair.marketo = people.get(mid)
        wanted: dict[str, set[str]] = {"lead": set(), "contact": set()}
        for pair in self.pairs.values():
            wanted[pair.link.entity].add(pair.link.dynamics_id.lower())
        for entity, record_id in self.orphans:
            wanted[entity].add(record_id)
        rows = {entity: self.w.dynamics_reader.by_ids(entity, ids) for entity, ids in wanted.items()}
        self._follow_qualifications(rows)
        for pair in self.pairs.values():
            pair.dynamics = rows[pair.link.entity].get(pair.link.dynamics_id.lower())
        self.rows = rows

    def _follow_qualifications(self, rows: dict[str, dict[str, dict[str, Any]]]) -> None:
        """A linked lead that reads back qualified moves the person to its contact, even if the
        contact's own webhook was lost."""
        qualified = [
            p
            for p in self.pairs.values()
            if p.link.entity == "lead"
            and (rows["lead"].get(p.link.dynamics_id.lower()) or {}).get("statecode") == QUALIFIED
        ]
        if not qualified:
            return
        contacts = self.w.dynamics_reader.by_originating_lead([p.link.dynamics_id for p in qualified])
        for pair in qualified:
            contact = contacts.get(pair.link.dynamics_id.lower())
            if contact is not None:
                self._relink(pair.link, str(contact["contactid"]).lower(), "lead qualified into contact")
                rows["contact"][str(contact["contactid"]).lower()] = contact

    # --- decisions ------------------------------------------------------------------------------

    def _decide(self) -> None:
        links = self.mapping.links
        for mid, pair in self.pairs.items():
            entity = self.mapping.entity(pair.link.entity)
            if pair.marketo is None:
                self._unlink(pair, "person deleted in Marketo; nothing deleted in Dynamics")
                pair.dynamics_changes[links.dynamics_marketo_id] = None
                continue
            if pair.dynamics is None:
                self._unlink(pair, f"{pair.link.entity} deleted in Dynamics; Microsoft Is Deleted set")
                pair.marketo_changes.update(
                    {
                        links.marketo_is_deleted: True,
                        links.marketo_lead_id: None,
                        links.marketo_contact_id: None,
                        links.marketo_type: None,
                    }
                )
                continue
            if self._filtered_out(pair.dynamics):
                pair.done = True
                self._log(
                    pair.link,
                    "skipped",
                    f"excluded by the sync filter ({self.mapping.options.sync_filter} = false)",
                )
                continue
            shadow = self.shadows.get(mid)
            pair.plan = reconcile(entity, pair.marketo, pair.dynamics, shadow.values if shadow else None)
            self._apply_plan(pair, entity, pair.plan)
            pair.marketo_changes.update(self._marketo_link_fields(pair.link, pair.marketo))
            if (pair.dynamics.get(links.dynamics_marketo_id) or "") != str(mid):
                pair.dynamics_changes[links.dynamics_marketo_id] = str(mid)
            self._validate(pair, create=False)

    def _filtered_out(self, row: dict[str, Any]) -> bool:
        column = self.mapping.options.sync_filter
        return column is not None and row.get(column) is False

    def _apply_plan(self, pair: Pair, entity: EntityMapping, plan: Plan) -> None:
        for decision in plan.decisions:
            if decision.collision:
                winner = decision.winner.value if decision.winner else "?"
                self.result.collisions[winner] = self.result.collisions.get(winner, 0) + 1
                self._log(
                    pair.link,
                    "collision",
                    f"{decision.field.marketo}: {decision.reason}",
                    (decision.field.marketo,),
                )
            if decision.action is Action.TO_MARKETO:
                pair.marketo_changes[decision.field.marketo] = to_marketo(decision.field, decision.value)
            elif decision.action is Action.TO_DYNAMICS:
                try:
                    pair.dynamics_changes[decision.field.dynamics] = to_dynamics(
                        decision.field, decision.value
                    )
                except UnmappedOptionError as exc:
                    self._fail(pair, "mdsync-option", str(exc), (decision.field.dynamics,))
                    pair.wrote_dynamics = False

    def _marketo_link_fields(self, link: Link, person: dict[str, Any]) -> dict[str, Any]:
        names = self.mapping.links
        wanted: dict[str, Any] = {
            names.marketo_type: "Lead" if link.entity == "lead" else "Contact",
            names.marketo_lead_id: link.dynamics_id
            if link.entity == "lead"
            else person.get(names.marketo_lead_id),
            names.marketo_contact_id: link.dynamics_id if link.entity == "contact" else None,
            names.marketo_is_deleted: False,
        }
        return {
            k: v
            for k, v in wanted.items()
            if person.get(k) != v and not (v is False and person.get(k) is None)
        }

    def _validate(self, pair: Pair, *, create: bool) -> None:
        if not pair.dynamics_changes:
            return
        columns = self.w.dynamics_reader.columns(pair.link.entity)
        problems = validate_write(
            columns,
            pair.dynamics_changes,
            create=create,
            enforce_business_required=self.mapping.options.enforce_business_required,
        )
        if problems:
            self._fail(pair, "mdsync-validation", describe(problems), tuple(p.column for p in problems))
            pair.dynamics_changes.clear()
            pair.wrote_dynamics = False

    def _unlink(self, pair: Pair, why: str) -> None:
        pair.done = True
        self.dropped_links.append(pair.link)
        self._log(pair.link, "unlinked", why)
        self.result.unlinked += 1

    # --- new Dynamics records -------------------------------------------------------------------

    def _link_orphans(self) -> None:
        """New (or unlinked) Dynamics records: link a Marketo person with the same email, or
        create one."""
        pending = []
        for (entity, record_id), notices in self.orphans.items():
            row = self.rows[entity].get(record_id)
            if row is None or self._filtered_out(row):
                continue
            email = canonical(
                self.mapping.entity(entity).email,
                row.get(self.mapping.entity(entity).email.dynamics),
                Side.DYNAMICS,
            )
            pending.append((entity, record_id, row, email, notices))
        emails = {str(p[3]) for p in pending if p[3]}
        matches = self.w.marketo_reader.by_emails(emails) if emails else {}
        taken = self.w.state.get_links_by_marketo(m["id"] for found in matches.values() for m in found)
        taken_now = {p.link.marketo_id for p in self.pairs.values()} | set(taken)
        creates = []
        for entity, record_id, row, email, notices in pending:
            candidates = [m for m in matches.get(str(email), []) if m["id"] not in taken_now]
            if candidates:
                person = min(candidates, key=lambda m: m["id"])
                taken_now.add(person["id"])
                self._link_existing(entity, record_id, row, person, notices)
            elif email and matches.get(str(email)):
                self.log.append(
                    LogEntry(
                        None,
                        record_id,
                        entity,
                        "skipped",
                        "a Marketo person with this email is linked to another Dynamics record",
                    )
                )
            else:
                creates.append((entity, record_id, row, notices))
        self._create_people(creates)

    def _link_existing(
        self, entity: str, record_id: str, row: dict[str, Any], person: dict[str, Any], notices: list[Notice]
    ) -> None:
        link = Link(int(person["id"]), entity, record_id)
        self.new_links.append(link)
        pair = self.pairs[link.marketo_id] = Pair(link, notices, person, row)
        self._log(link, "linked", "linked to the Marketo person with the same email")
        self.result.linked += 1
        mapping = self.mapping.entity(entity)
        pair.plan = reconcile(mapping, person, row, None)
        self._apply_plan(pair, mapping, pair.plan)
        pair.marketo_changes.update(self._marketo_link_fields(link, person))
        pair.dynamics_changes[self.mapping.links.dynamics_marketo_id] = str(link.marketo_id)
        self._validate(pair, create=False)

    def _create_people(self, creates: list[tuple[str, str, dict[str, Any], list[Notice]]]) -> None:
        if not creates:
            return
        records, shadows = [], []
        for entity, record_id, row, _ in creates:
            mapping = self.mapping.entity(entity)
            values = initial_values(mapping, row, Side.DYNAMICS)
            record: dict[str, Any] = {}
            for fmap in mapping.fields:
                if fmap.marketo in values:
                    record[fmap.marketo] = to_marketo(fmap, values[fmap.marketo])
            record.update(self._marketo_link_fields(Link(0, entity, record_id), {}))
            records.append(record)
            shadows.append(values)
        try:
            results = self.w.marketo.push_leads(records, action="createOnly", lookup_field="email")
        except TransientError as exc:
            for *_, notices in creates:
                self._retry(notices, exc)
            return
        for (entity, record_id, _row, notices), result, values in zip(creates, results, shadows, strict=True):
            if result.id is None:
                reason = "; ".join(f"{r.code} {r.message}" for r in result.reasons) or result.status
                if any(r.code == "1005" for r in result.reasons):
                    # Someone created the person meanwhile: try again, the email lookup links it.
                    self._retry(notices, TransientError(reason, service="marketo"))
                else:
                    self.log.append(
                        LogEntry(
                            None, record_id, entity, "failed", f"creating the Marketo person failed: {reason}"
                        )
                    )
                    self.result.failures += 1
                continue
            link = Link(int(result.id), entity, record_id)
            self.new_links.append(link)
            pair = self.pairs[link.marketo_id] = Pair(link, notices, dynamics=_row, done=True)
            pair.dynamics_changes[self.mapping.links.dynamics_marketo_id] = str(link.marketo_id)
            self.created_shadows[link.marketo_id] = Shadow(link.marketo_id, values)
            self._log(
                link,
                "created_in_marketo",
                f"new {entity} in Dynamics: Marketo person {link.marketo_id} created",
                tuple(values),
            )
            self.result.created_in_marketo += 1

    # --- writes ---------------------------------------------------------------------------------

    def _write_marketo(self) -> None:
        pairs = [p for p in self.pairs.values() if p.marketo_changes and p.marketo is not None]
        if not pairs:
            return
        records = [{"id": p.link.marketo_id, **p.marketo_changes} for p in pairs]
        try:
            results = self.w.marketo.push_leads(records, action="updateOnly", lookup_field="id")
        except TransientError as exc:
            for pair in pairs:
                pair.wrote_marketo = False
                self._retry(pair.notices, exc)
            return
        for pair, result in zip(pairs, results, strict=True):
            if result.id is None:
                pair.wrote_marketo = False
                reason = "; ".join(f"{r.code} {r.message}" for r in result.reasons) or result.status
                self._log(
                    pair.link, "failed", f"Marketo refused the update: {reason}", tuple(pair.marketo_changes)
                )
                self.result.failures += 1
            else:
                self._log_write(pair, "to_marketo", pair.marketo_changes)

    def _write_dynamics(self) -> None:
        for entity in ("lead", "contact"):
            pairs = [
                p
                for p in self.pairs.values()
                if p.link.entity == entity and p.dynamics_changes and p.dynamics is not None
            ]
            if not pairs:
                continue
            self._update_rows(entity, pairs)

    def _update_rows(self, entity: str, pairs: list[Pair]) -> None:
        """UpdateMultiple is all-or-nothing on standard tables: when Dataverse refuses a batch,
        split it until the refused row is alone, and record that row's failure."""
        key = f"{entity}id"
        records = [{key: p.link.dynamics_id, **p.dynamics_changes} for p in pairs]
        try:
            self.w.dataverse.update_multiple(ENTITY_SETS[entity], entity, records)
        except TransientError as exc:
            for pair in pairs:
                pair.wrote_dynamics = False
                self._retry(pair.notices, exc)
            return
        except ValidationError as exc:
            if len(pairs) > 1:
                middle = len(pairs) // 2
                self._update_rows(entity, pairs[:middle])
                self._update_rows(entity, pairs[middle:])
                return
            pair = pairs[0]
            pair.wrote_dynamics = False
            self._fail(pair, exc.code or "dataverse", exc.message, tuple(pair.dynamics_changes))
            return
        except PermanentError as exc:
            for pair in pairs:
                pair.wrote_dynamics = False
                self._fail(pair, exc.code or "dataverse", exc.message, tuple(pair.dynamics_changes))
            return
        for pair in pairs:
            self._log_write(pair, "to_dynamics", pair.dynamics_changes)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _store(self) -> None:
        state = self.w.state
        for link in self.dropped_links:
            state.delete_link(link)
            state.delete_shadow(link.marketo_id)
        for link in self.new_links:
            if link.marketo_id in self.pairs and self.pairs[link.marketo_id].link == link:
                state.put_link(link)
        shadows = []
        for mid, pair in self.pairs.items():
            if pair.plan is not None:
                values = pair.plan.shadow_after(
                    wrote_marketo=pair.wrote_marketo, wrote_dynamics=pair.wrote_dynamics
                )
                shadows.append(Shadow(mid, values))
            elif mid in self.created_shadows:
                shadows.append(self.created_shadows[mid])
        if shadows:
            state.put_shadows(shadows)
        if self.failures:
            try:
                self.w.activity_log.record(self.failures)
            except (TransientError, PermanentError) as exc:
                log.warning(
                    "could not write %d failures to Marketo Activity Logs: %s", len(self.failures), exc
                )
                self.log.append(LogEntry(None, None, "-", "failed", f"Activity Log write failed: {exc}"))
        if self.log:
            state.append_log(self.log)
        self._reschedule_pending()

    def _fail(self, pair: Pair, code: str, message: str, fields: tuple[str, ...]) -> None:
        failure = Failure(
            pair.link.marketo_id, pair.link.entity, pair.link.dynamics_id, code, message, fields
        )
        self.failures.append(failure)
        self._log(pair.link, "failed", f"Dynamics refused the write [{code}]: {message}", fields)
        self.result.failures += 1

    def _log_write(self, pair: Pair, direction: str, changes: dict[str, Any]) -> None:
        shown = ", ".join(sorted(changes))
        self._log(pair.link, direction, f"wrote {shown}", tuple(sorted(changes)))
        if direction == "to_marketo":
            self.result.to_marketo += 1
        else:
            self.result.to_dynamics += 1

    def _log(self, link: Link, action: str, detail: str, fields: tuple[str, ...] = ()) -> None:
        self.log.append(
            LogEntry(
                link.marketo_id or None,
                link.dynamics_id,
                link.entity,
                action,
                detail,
                fields,
                datetime.now(UTC),
            )
        )

    def _retry(self, notices: Iterable[Notice], exc: TransientError) -> None:
        for notice in notices:
            self.retry[notice.dedup_id] = (notice, exc)

    def _reschedule_pending(self) -> None:
        if self.retry:
            self.reschedule([n for n, _ in self.retry.values()], next(iter(self.retry.values()))[1])

    def reschedule(self, notices: Sequence[Notice], exc: TransientError) -> None:
        """Put the notices back for later, or park them after the last attempt. Raises if the
        queue cannot take them, so the host abandons the batch and nothing is lost."""
        now = datetime.now(UTC)
        later: dict[datetime, list[Notice]] = {}
        parked = []
        for notice in notices:
            attempt = notice.attempt + 1
            if attempt >= self.w.max_attempts:
                parked.append(
                    ParkedNotice(notice.dedup_id, notice.to_json(), f"{type(exc).__name__}: {exc}", now)
                )
                continue
            at = now + timedelta(seconds=self.w.delay_for(attempt, exc))
            later.setdefault(at.replace(microsecond=0), []).append(notice.retry(attempt))
        for at, batch in later.items():
            self.w.queue.schedule(batch, at)
        if parked:
            self.w.state.park(parked)
            self.w.state.append_log(
                [
                    LogEntry(
                        None,
                        None,
                        "-",
                        "parked",
                        f"notice {p.dedup_id} parked after {self.w.max_attempts} attempts: {p.reason}",
                    )
                    for p in parked
                ]
            )
        self.result.rescheduled += sum(len(b) for b in later.values())
        self.result.parked += len(parked)

    def _count_calls(self) -> None:
        marketo_before, dataverse_before = self._calls_before
        self.result.marketo_calls = self.w.marketo.calls.total - marketo_before
        self.result.dataverse_calls = self.w.dataverse.calls.total - dataverse_before
