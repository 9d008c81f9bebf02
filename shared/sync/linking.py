"""Dynamics records no person is linked to: link a person, or create one.

A new lead or contact (that passes the sync filter) is linked to the Marketo person with the same
email when one is free, else a person is created for it. When every person with that email is
already linked to another record, a duplicate is created (``createDuplicate``): in Dynamics two
records may share an email, and each one gets its own person. All of it in bulk: one email
lookup per 300 records, one Sync Leads call per 300 creations.

Not every unlinked record is new. These are left alone:

* a qualified lead: its person followed it to the contact (see ``loading``);
* a record whose only change is our own (the echo of clearing its Marketo id when its person was
  deleted in Marketo): the person is created when someone changes the record later;
* a record excluded by the sync filter.

A record whose person was deleted in Marketo, read in the same batch as someone's change of the
record, is unlinked and taken as an orphan there and then (``reopen_deleted``): a later update
makes a new person whether the worker reads the deletion before the change or with it. Unlinked
first, the change would be consumed by the unlink, and the echo of clearing the Marketo-id column
would then look like mdsync's own last change.

A record that still names a live, unlinked person in its Marketo-id column is relinked to it
(the state store lost the link, or a write of it failed).

Linking a record to an existing person is a first link: the person's values and the record's
are reconciled by the first-link rule (``shared.reconcile.decide_first_link``: by default
Dynamics, the system of record, fills Marketo where both hold a value; a blank never overwrites
a value), never by a collision rule that would let a stale Marketo value overwrite what sales
just typed. Emails match without case; each side keeps the case it was typed in.

One record never holds the others back (``split``): an email Marketo's filter cannot carry (a
comma would make it two addresses, one perhaps another person's) is never looked up, and its
record is reported and parked instead of being linked or given a person; a lookup or a creation
refused for its content is split until the refused record stands alone.

Each pair made is returned with its decision (``shared.sync.batch``): a person created is
``Settled`` (its values become the shadow; the record gets its Marketo id), a person linked is
``Reconciled`` by the first-link rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared.errors import ServiceUnavailableError, TransientError
from shared.mapping import FieldMap, FieldMapping, FieldType, Side
from shared.marketo.client import MarketoClient
from shared.marketo.models import PushResult, Reason
from shared.normalize import UnmappedOptionError, email_key, to_marketo
from shared.notices import Kind, Notice, Source
from shared.ports import Link, Shadow, StateStore
from shared.reconcile import initial_values
from shared.sync.batch import (
    Batch,
    Decision,
    Linked,
    Orphan,
    Pair,
    Reconciled,
    Row,
    Settled,
    unlink_reason,
)
from shared.sync.journal import Journal
from shared.sync.loading import deletion_confirmed
from shared.sync.planning import Planner, excluded, link_fields
from shared.sync.reads import QUALIFIED, DynamicsReader, MarketoReader
from shared.sync.split import Piece, Refusal, per_item, refuse, send_split

ALREADY_EXISTS = "1005"


def adopt(
    batch: Batch,
    planner: Planner,
    link: Link,
    sides: tuple[Row, Row],
    journal: Journal,
    *,
    why: str,
    notices: Iterable[Notice] = (),
    shadow: Shadow | None = None,
    restored: bool = False,
) -> Reconciled:
    """Link an existing person and an existing record, and reconcile them: a first link, unless
    the link is ``restored`` (the record names the person: a link the state store lost) and a
    shadow survives from it."""
    marketo, dynamics = sides
    notices = [*notices, *batch.unlinked_persons.pop(link.marketo_id, [])]
    seen = datetime.now(UTC)  # both sides were just read (or written)
    pair = batch.add(Pair(link, notices, marketo, dynamics, shadow, marketo_seen=seen))
    linked = Linked(first_link=not restored or shadow is None)
    journal.linked(link, "linked", why)
    return replace(planner.decide_fields(pair, journal, first_link=linked.first_link), linked=linked)


def new_person(
    planner: Planner, mapping: FieldMapping, who: Link, row: Row
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of a new person for the Dynamics record ``row`` (``who``: its entity and id),
    and their canonical values (the first shadow). A value Marketo could not take as it is (an
    option the value map does not name, money in another currency) is left out; the next change
    of the record reports it. The worker and the backfill create persons with this one rule."""
    entity = planner.entity(who.entity)
    values = initial_values(entity, row, Side.DYNAMICS)
    record: dict[str, Any] = {}
    for field in entity.fields:
        if field.marketo not in values:
            continue
        try:
            value = to_marketo(field, values[field.marketo])
        except UnmappedOptionError:
            del values[field.marketo]
            continue
        if field.type is FieldType.MONEY and value is not None and _foreign_currency(planner, row, field):
            del values[field.marketo]
            continue
        record[field.marketo] = value
    record.update(link_fields(mapping, Link(0, who.entity, who.dynamics_id), {}))
    return record, values


def _foreign_currency(planner: Planner, row: Row, field: FieldMap) -> bool:
    currency = str(row.get("_transactioncurrencyid_value") or "").lower()
    return bool(currency) and planner.rows.currencies().get(currency) != field.currency


Adoption = tuple[Orphan, Row, str]


class OrphanLinker:
    def __init__(
        self,
        marketo: MarketoClient,
        people: MarketoReader,
        rows: DynamicsReader,
        state: StateStore,
        *,
        mapping: FieldMapping,
        planner: Planner,
    ) -> None:
        self.marketo = marketo
        self.people = people
        self.rows = rows
        self.state = state
        self.mapping = mapping
        self.planner = planner

    def link(self, batch: Batch, decisions: Mapping[int, Decision], journal: Journal) -> dict[int, Decision]:
        """Link or create a person for each orphan that wants one; returns the decisions of the
        pairs made (``decisions``: the planned ones, whose deleted persons may reopen orphans)."""
        self.reopen_deleted(batch, decisions, journal)
        pending = [o for o in batch.orphans.values() if self._wanted(o, journal)]
        adoptions, pending = self._recover(batch, pending)
        emails = {o.record_id: self._email(o) for o in pending}
        found = self.people.by_emails({e for e in emails.values() if e})
        pending = [o for o in pending if not self._email_refused(batch, o, emails, found.refused, journal)]
        matches = found.found
        taken = self._taken(batch, matches) | {int(person["id"]) for _, person, _ in adoptions}
        fresh: list[Orphan] = []
        duplicates: list[Orphan] = []
        claimed: set[str] = set()
        for orphan in pending:
            email = emails[orphan.record_id]
            free = [m for m in matches.get(email or "", []) if int(m["id"]) not in taken]
            if free:
                person = min(free, key=lambda m: int(m["id"]))
                taken.add(int(person["id"]))
                adoptions.append((orphan, person, "linked to the Marketo person with the same email"))
            elif email and not matches.get(email) and email not in claimed:
                claimed.add(email)
                fresh.append(orphan)
            else:
                duplicates.append(orphan)  # no email, or every person with it has its record
        made = self._adopt_all(batch, adoptions, journal)
        made |= self._create(batch, fresh, "createOnly", journal)
        made |= self._create(batch, duplicates, "createDuplicate", journal)
        return made

    # --- which orphans -------------------------------------------------------------------------

    def reopen_deleted(self, batch: Batch, decisions: Mapping[int, Decision], journal: Journal) -> None:
        """Pairs whose person was deleted in Marketo and whose record someone changed: the link
        ends in this batch and the record is an orphan, with its Dynamics notices."""
        for pair in list(batch.pairs.values()):
            unlink = unlink_reason(decisions.get(pair.marketo_id))
            if unlink is None or pair.marketo is not None or pair.dynamics is None:
                continue
            if not deletion_confirmed(pair):
                continue
            notices = [n for n in pair.notices if n.source is Source.DYNAMICS]
            orphan = Orphan(pair.entity, pair.dynamics_id.lower(), notices, pair.dynamics)
            if not notices or not self._changed_by_someone(orphan, pair.dynamics):
                continue
            del batch.pairs[pair.marketo_id]
            batch.dropped_links.append(pair.link)
            journal.unlinked(pair.link, unlink)
            batch.orphans[(orphan.entity, orphan.record_id)] = orphan

    def _wanted(self, orphan: Orphan, journal: Journal) -> bool:
        row = orphan.row
        if row is None:
            return False  # gone already: there is nothing to link
        if excluded(self.mapping, row):
            journal.note(
                orphan.who, "skipped", f"excluded by the sync filter ({self.mapping.options.sync_filter})"
            )
            return False
        if orphan.entity == "lead" and row.get("statecode") == QUALIFIED:
            journal.note(orphan.who, "skipped", "qualified lead: its person follows the contact")
            return False
        if row.get("_masterid_value"):
            master = row["_masterid_value"]
            journal.note(orphan.who, "skipped", f"merged into {orphan.entity} {master} in Dynamics")
            return False
        if not self._changed_by_someone(orphan, row):
            journal.note(
                orphan.who, "skipped", "unlinked; its last change was ours: waiting for a change in Dynamics"
            )
            return False
        return True

    def _changed_by_someone(self, orphan: Orphan, row: Row) -> bool:
        """Whether anyone but mdsync changed the record: the notices say so when they carry the
        changed columns; otherwise the record's last modifier does."""
        link_column = self.mapping.links.dynamics_marketo_id
        # Who "we" are comes from Dataverse itself (WhoAmI), not from the own_write hint, which
        # rests on configuration (DYNAMICS_SYNC_USER_IDS) and must not decide what syncs.
        own = self.rows.own_user_id()
        for notice in orphan.notices:
            if notice.source is Source.OPERATOR:
                return True
            if notice.kind is Kind.DELETED or (notice.actor or "").lower() == own:
                continue
            if notice.changes and not notice.trimmed:
                if set(notice.changes) - {link_column}:
                    return True
                continue
            if notice.kind in (Kind.CREATED, Kind.QUALIFIED):
                return True
            if str(row.get("_modifiedby_value") or "").lower() != self.rows.own_user_id():
                return True
        return False

    def _recover(self, batch: Batch, orphans: list[Orphan]) -> tuple[list[Adoption], list[Orphan]]:
        """Records whose Marketo-id column names a live person that has no link get it back."""
        column = self.mapping.links.dynamics_marketo_id
        named = {o.record_id: str((o.row or {}).get(column) or "") for o in orphans}
        ids = {int(v) for v in named.values() if v.isdigit()}
        if not ids:
            return [], orphans
        linked = set(self.state.get_links_by_marketo(ids)) | set(batch.pairs)
        # An id Marketo cannot be asked for names no live person: such a record links by email.
        alive = self.people.by_ids(ids - linked).found
        adoptions: list[Adoption] = []
        rest = []
        for orphan in orphans:
            value = named[orphan.record_id]
            person = alive.pop(int(value), None) if value.isdigit() else None  # one record each
            if person is None:
                rest.append(orphan)
            else:
                adoptions.append((orphan, person, f"relinked: the record names Marketo person {value}"))
        return adoptions, rest

    def _email_refused(
        self,
        batch: Batch,
        orphan: Orphan,
        emails: dict[str, str | None],
        refused: dict[str, Refusal],
        journal: Journal,
    ) -> bool:
        email = emails[orphan.record_id]
        why = refused.get((email or "").lower())
        if why is None:
            return False
        batch.orphans.pop((orphan.entity, orphan.record_id), None)
        column = self.mapping.entity(orphan.entity).email.dynamics
        record = f"{orphan.entity} {orphan.record_id} (looking up its email in Marketo)"
        refuse(
            batch, journal, orphan.who, orphan.notices, why, record=record, fields=(column,), activity=False
        )
        return True

    def _email(self, orphan: Orphan) -> str | None:
        field = self.mapping.entity(orphan.entity).email
        return email_key((orphan.row or {}).get(field.dynamics))

    def _taken(self, batch: Batch, matches: dict[str, list[Row]]) -> set[int]:
        ids = {int(m["id"]) for found in matches.values() for m in found}
        return set(self.state.get_links_by_marketo(ids)) | set(batch.pairs)

    # --- linking and creating ------------------------------------------------------------------

    def _adopt_all(self, batch: Batch, adoptions: list[Adoption], journal: Journal) -> dict[int, Decision]:
        shadows = self.state.get_shadows(int(p["id"]) for _, p, _ in adoptions) if adoptions else {}
        made: dict[int, Decision] = {}
        for orphan, person, why in adoptions:
            assert orphan.row is not None
            batch.orphans.pop((orphan.entity, orphan.record_id), None)
            link = Link(int(person["id"]), orphan.entity, orphan.record_id)
            shadow = shadows.get(link.marketo_id)
            sides = (person, orphan.row)
            restored = why.startswith("relinked")
            made[link.marketo_id] = adopt(
                batch,
                self.planner,
                link,
                sides,
                journal,
                why=why,
                notices=orphan.notices,
                shadow=shadow,
                restored=restored,
            )
        return made

    def _create(
        self, batch: Batch, orphans: Sequence[Orphan], action: str, journal: Journal
    ) -> dict[int, Decision]:
        """A Marketo person for each orphan; returns the decisions of the pairs created."""
        records = {o.record_id: self._person_record(o) for o in orphans}

        def push(chunk: list[Orphan]) -> list[PushResult]:
            return self.marketo.push_leads(
                [records[o.record_id][0] for o in chunk], action=action, lookup_field="email"
            )

        made: dict[int, Decision] = {}
        for piece in send_split(orphans, push):
            if piece.answer is None:
                self._create_failed(batch, piece, journal)
                continue
            for orphan, result in zip(piece.items, per_item(piece.answer, piece.items), strict=True):
                if result is None or result.id is None:
                    self._not_created(batch, orphan, result.reasons if result else (), journal)
                else:
                    values = records[orphan.record_id][1]
                    made[int(result.id)] = self._created(batch, orphan, int(result.id), values, journal)
        return made

    def _create_failed(self, batch: Batch, piece: Piece[Orphan, list[PushResult]], journal: Journal) -> None:
        error = piece.error
        assert error is not None
        for orphan in piece.items:
            if isinstance(error, TransientError):
                batch.defer(orphan.notices, error, orphan.who)
            elif piece.refused_alone:
                record = f"{orphan.entity} {orphan.record_id} (creating its Marketo person)"
                refuse(
                    batch,
                    journal,
                    orphan.who,
                    orphan.notices,
                    Refusal.of(error),
                    record=record,
                    direction="to_marketo",
                    activity=False,
                )
            else:
                code = error.code or error.service
                journal.failed(
                    orphan.who, "refused", code, error.message, direction="to_marketo", activity=False
                )
                batch.park(orphan.notices, str(error), orphan.who)

    def _person_record(self, orphan: Orphan) -> tuple[dict[str, Any], dict[str, Any]]:
        assert orphan.row is not None
        return new_person(self.planner, self.mapping, Link(0, orphan.entity, orphan.record_id), orphan.row)

    def _created(
        self, batch: Batch, orphan: Orphan, marketo_id: int, values: dict[str, Any], journal: Journal
    ) -> Settled:
        """The person created for ``orphan``: the record gets its Marketo id."""
        batch.orphans.pop((orphan.entity, orphan.record_id), None)
        link = Link(marketo_id, orphan.entity, orphan.record_id)
        batch.add(Pair(link, list(orphan.notices), dynamics=orphan.row))
        detail = f"new {orphan.entity} in Dynamics: Marketo person {marketo_id} created"
        journal.created(link, "to_marketo", detail, values)
        return Settled(
            dynamics_changes={self.mapping.links.dynamics_marketo_id: str(marketo_id)},
            linked=Linked(first_link=False, created=values),
        )

    def _not_created(self, batch: Batch, orphan: Orphan, reasons: Sequence[Reason], journal: Journal) -> None:
        if not reasons or any(r.code == ALREADY_EXISTS for r in reasons):
            # Created by someone meanwhile (or no answer): the next attempt finds and links it.
            exc = ServiceUnavailableError("person not created; will look again", service="marketo")
            batch.defer(orphan.notices, exc, orphan.who)
            return
        message = "; ".join(f"{r.code} {r.message}" for r in reasons)
        journal.failed(
            orphan.who, "marketo", reasons[0].code, message, direction="to_marketo", activity=False
        )
