"""New Marketo persons: not pushed to Dynamics, unless ``options.auto_create_in_dynamics`` is on.

Off (the default), only the "Sync Person to Microsoft" flow step creates a lead for a person, and
the sync log says so. On, a new unlinked person gets a lead (or is linked to an open, unlinked
lead or contact with the same email when ``match_on_email`` is on). A person that was linked
before (its record deleted in Dynamics: "Microsoft Is Deleted") is left to the flow step.

Leads are created with CreateMultiple carrying the person's id in ``mdsync_marketoid``, the
alternate key: Dynamics itself refuses a second lead for the same person, so a race with the
flow step (or a retry after a lost state write) cannot make two. When a chunk is refused it is
split down to single create-only upserts on that key (``If-None-Match: *``), and a person whose
lead already exists is linked to it.

Each pair made is returned with its decision: a lead created is ``Settled`` (its values become
the shadow; the person gets the link fields), a record linked is ``Reconciled`` (a first link).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.dataverse.client import DataverseClient
from shared.errors import ConflictError, PermanentError, TransientError, ValidationError
from shared.mapping import FieldMapping, Side
from shared.normalize import UnmappedOptionError, email_key, to_dynamics
from shared.notices import Kind, Notice
from shared.ports import Link
from shared.reconcile import initial_values
from shared.sync.batch import Batch, Decision, Linked, Pair, Row, Settled
from shared.sync.journal import Journal
from shared.sync.linking import adopt
from shared.sync.planning import Columns, Planner, currency_binding, excluded, link_fields
from shared.sync.reads import DynamicsReader
from shared.sync.split import Refusal, refuse
from shared.sync.validation import Problem, describe, validate_write

NOT_PUSHED = "new person in Marketo: not pushed to Dynamics (the flow step creates its lead)"


@dataclass
class NewLead:
    marketo_id: int
    person: Row
    notices: list[Notice]
    record: dict[str, Any]
    values: dict[str, Any]

    @property
    def who(self) -> Link:
        return Link(self.marketo_id, "lead", "")


class LeadCreator:
    def __init__(
        self,
        dataverse: DataverseClient,
        rows: DynamicsReader,
        mapping: FieldMapping,
        planner: Planner,
        columns: Columns,
    ) -> None:
        self.dataverse = dataverse
        self.rows = rows
        self.mapping = mapping
        self.planner = planner
        self.columns = columns

    def create(self, batch: Batch, people: Mapping[int, Row], journal: Journal) -> dict[int, Decision]:
        """A lead (or an unlinked record with the same email) for each new person, when the
        mapping opts in; returns the decisions of the pairs made."""
        if not self.mapping.options.auto_create_in_dynamics:
            for marketo_id, notices in batch.unlinked_persons.items():
                if any(n.kind is Kind.CREATED for n in notices):
                    journal.note(Link(marketo_id, "-", ""), "skipped", NOT_PUSHED)
            return {}
        candidates = {
            m: people[m] for m in batch.unlinked_persons if m in people and self._never_linked(people[m])
        }
        made: dict[int, Decision] = {}
        if self.mapping.options.match_on_email:
            made |= self._match(batch, candidates, journal)
        leads = [self._new_lead(batch, m, p, journal) for m, p in candidates.items()]
        made |= self._insert(batch, [lead for lead in leads if lead is not None], journal)
        return made

    def _never_linked(self, person: Row) -> bool:
        names = self.mapping.links
        return not any(
            person.get(n) for n in (names.marketo_is_deleted, names.marketo_lead_id, names.marketo_contact_id)
        )

    # --- an existing record ----------------------------------------------------------------------

    def _match(self, batch: Batch, candidates: dict[int, Row], journal: Journal) -> dict[int, Decision]:
        """Link open, unlinked records with the same email (contacts first, as the flow step)."""
        made: dict[int, Decision] = {}
        for entity in ("contact", "lead"):
            email_field = self.mapping.entity(entity).email
            emails = {m: e for m, p in candidates.items() if (e := email_key(p.get(email_field.marketo)))}
            if not emails:
                return made
            read = self.rows.unlinked_by_email(entity, emails.values())
            found = read.found
            taken = batch.linked_records()
            for marketo_id, email in emails.items():
                refusal = read.refused.get(email.lower())
                if refusal is not None:
                    candidates.pop(marketo_id)
                    self._email_refused(batch, marketo_id, refusal, email_field.dynamics, journal)
                    continue
                row = found.pop(email, None)
                if row is None or excluded(self.mapping, row):
                    continue
                record_id = str(row[f"{entity}id"]).lower()
                if (entity, record_id) in taken:
                    continue
                person = candidates.pop(marketo_id)
                link = Link(marketo_id, entity, record_id)
                why = "linked to the unlinked record with the same email"
                made[marketo_id] = adopt(batch, self.planner, link, (person, row), journal, why=why)
        return made

    def _email_refused(
        self, batch: Batch, marketo_id: int, refusal: Refusal, column: str, journal: Journal
    ) -> None:
        """Its email could not be looked up in Dynamics: no lead is made (it might be a second)."""
        notices = batch.unlinked_persons.pop(marketo_id, [])
        who = Link(marketo_id, "lead", "")
        record = f"Marketo person {marketo_id} (looking up its email in Dynamics)"
        refuse(batch, journal, who, notices, refusal, record=record, fields=(column,))

    # --- a new lead -----------------------------------------------------------------------------

    def _new_lead(self, batch: Batch, marketo_id: int, person: Row, journal: Journal) -> NewLead | None:
        notices = batch.unlinked_persons.pop(marketo_id)
        lead = self.planner.entity("lead")
        values = initial_values(lead, person, Side.MARKETO)
        problems: list[Problem] = []
        record: dict[str, Any] = {}
        for field in lead.fields:
            if field.marketo not in values:
                continue
            try:
                value = to_dynamics(field, values[field.marketo])
            except UnmappedOptionError as exc:
                problems.append(Problem(field.dynamics, str(exc)))
                continue
            if value is not None:
                record[field.dynamics] = value
        record.update(currency_binding(lead, record, self.rows.currencies))
        record[self.mapping.links.dynamics_marketo_id] = str(marketo_id)
        problems += validate_write(
            self.columns("lead"),
            record,
            create=True,
            enforce_business_required=self.mapping.options.enforce_business_required,
        )
        new = NewLead(marketo_id, person, notices, record, values)
        if problems:
            columns = [p.column for p in problems]
            journal.failed(new.who, "validation", "mdsync-validation", describe(problems), columns)
            return None
        return new

    def _insert(self, batch: Batch, leads: Sequence[NewLead], journal: Journal) -> dict[int, Decision]:
        """Create the leads (split down to one when a chunk is refused); the pairs made."""
        if not leads:
            return {}
        if len(leads) == 1:
            return self._insert_one(batch, leads[0], journal)
        try:
            ids = self.dataverse.create_multiple("leads", "lead", [lead.record for lead in leads])
        except TransientError as exc:
            for lead in leads:
                batch.defer(lead.notices, exc, lead.who)
            return {}
        except (ValidationError, ConflictError):
            middle = len(leads) // 2
            return self._insert(batch, leads[:middle], journal) | self._insert(batch, leads[middle:], journal)
        except PermanentError as exc:
            for lead in leads:
                self._refused(batch, lead, exc, journal)
            return {}
        return {
            lead.marketo_id: self._created(batch, lead, lead_id.lower(), journal)
            for lead, lead_id in zip(leads, ids, strict=True)
        }

    def _insert_one(self, batch: Batch, lead: NewLead, journal: Journal) -> dict[int, Decision]:
        key = {self.mapping.links.dynamics_marketo_id: str(lead.marketo_id)}
        select = self.rows.select("lead")
        try:
            row = self.dataverse.upsert_by_key("leads", key, lead.record, create_only=True, select=select)
        except ConflictError:
            # A lead for this person exists already (the flow step, or an earlier attempt).
            row = self.dataverse.get("leads", key, select=select)
            link = Link(lead.marketo_id, "lead", str(row["leadid"]).lower())
            why = "linked to the lead that already carries its Marketo id"
            adopted = adopt(
                batch, self.planner, link, (lead.person, row), journal, why=why, notices=lead.notices
            )
            return {lead.marketo_id: adopted}
        except TransientError as exc:
            batch.defer(lead.notices, exc, lead.who)
            return {}
        except ValidationError as exc:
            fields = exc.fields or tuple(lead.record)
            journal.failed(lead.who, "rejected", exc.code or "dataverse", exc.message, fields)
            return {}
        except PermanentError as exc:
            self._refused(batch, lead, exc, journal)
            return {}
        return {lead.marketo_id: self._created(batch, lead, str(row["leadid"]).lower(), journal)}

    def _created(self, batch: Batch, lead: NewLead, lead_id: str, journal: Journal) -> Settled:
        """The lead created for a new person: the person gets the link fields."""
        link = Link(lead.marketo_id, "lead", lead_id)
        batch.add(Pair(link, list(lead.notices), marketo=lead.person))
        detail = f"new person in Marketo: lead {lead_id} created in Dynamics (auto_create_in_dynamics)"
        journal.created(link, "to_dynamics", detail, lead.values)
        return Settled(
            marketo_changes=link_fields(self.mapping, link, lead.person),
            linked=Linked(first_link=False, created=lead.values),
        )

    def _refused(self, batch: Batch, lead: NewLead, exc: PermanentError, journal: Journal) -> None:
        code = exc.code or exc.service
        journal.failed(lead.who, "refused", code, exc.message, tuple(lead.record), activity=False)
        batch.park(lead.notices, str(exc), lead.who)
