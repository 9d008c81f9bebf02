""" "Sync Person to Microsoft": create a Dynamics lead for a person now, if it has none.

Called from a Marketo trigger campaign's Call Webhook step. It never updates an existing record
(only the background sync moves updates):

* the person has a live linked lead or contact  -> ``exists``, nothing written;
* a lead or contact already carries the person's id in the Marketo-id column (the state-store
  link was lost, or a concurrent call just created it) -> the link is restored, ``exists``;
* an unlinked, active lead or contact has the same email (``options.match_on_email``) -> link
  it (only the Marketo-id column is written), ``exists`` with its id; a record whose Marketo-id
  column names a person that no longer exists in Marketo (deleted, and the sync has not caught
  up yet) counts as unlinked: the person deleted and created again gets its old record back,
  not a second lead;
* otherwise -> create a lead from the person's mapped fields, read fresh from Marketo, link
  both ways, ``created``. A validation failure answers ``failed`` with Dataverse's reason and
  is added to the person's Activity Log.

Why two concurrent calls create one lead: the lead is created with a create-only upsert
(``If-None-Match: *``) addressed by the alternate key on the Marketo-id column. Dataverse itself
then refuses the second create (412) inside its own transaction, and the key's unique index
refuses it even when both creates pass the existence check at the same instant, so the guarantee
holds whatever the timing, across function instances, and needs no lease that could expire
while Dataverse is slow. It does not depend on the state store either: the lookup before the
create finds a record that already carries the person's id, and the loser of a race reads the
winner's lead by key; both answer ``exists`` and restore the link. Linking by email is guarded
the same way: the Marketo-id column is written with ``If-Match`` on the ETag the lookup read,
so two persons sharing an email cannot both take one record.

Time: Marketo abandons a webhook call after 30 s and never calls again, so the flow step has its
own clients (built by ``shared.bootstrap``), with a short per-attempt timeout and retry budget
(:class:`TimeBudget`), and a
deadline: a step that could not finish before the deadline is not started, and the call answers
503 having changed nothing. The create is the commit point: after it, no fault turns the answer
into an error. The Marketo link fields are written if time allows; otherwise the worker writes
them when it reconciles the lead's create notice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import BatchRequest
from shared.dataverse.odata import ENTITY_SETS
from shared.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    ServiceUnavailableError,
    TransientError,
    ValidationError,
)
from shared.mapping import EntityMapping, FieldMapping, FieldType, Side, bind_dates, date_behavior
from shared.marketo.client import MarketoClient
from shared.normalize import UnmappedOptionError, to_dynamics, to_marketo
from shared.ports import Link, LogEntry, Shadow, StateStore
from shared.reconcile import Plan, initial_values, reconcile
from shared.redaction import redact
from shared.sync.activity_log import ActivityLog, Failure
from shared.sync.validation import Column, describe, validate_write

log = logging.getLogger(__name__)

Status = Literal["created", "exists", "failed"]
# Contacts first: a person who is already a customer is linked to the contact, not a lead.
LOOKUP_ORDER = ("contact", "lead")
CANDIDATES_PER_TABLE = 5
LINK_ATTEMPTS = 2


@dataclass(frozen=True)
class FlowStepOutcome:
    status: Status
    dynamics_id: str | None = None
    entity: str | None = None
    reason: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status}
        if self.dynamics_id:
            body["dynamicsId"] = self.dynamics_id
            body["entity"] = self.entity
        if self.reason:
            body["reason"] = self.reason
        return body


class PersonNotFound(Exception):
    """The Marketo person named by the webhook does not exist."""


@dataclass(frozen=True)
class TimeBudget:
    """How long one flow step may take. Marketo waits 30 s for the answer and never retries."""

    total_seconds: float = 25.0
    attempt_timeout_seconds: float = 6.0
    retry_seconds: float = 4.0
    # How long a Marketo call may wait for the step's reserved rate before answering 503: the
    # first read still fits with the rest of the step, and a burst is slowed to the rate.
    rate_wait_seconds: float = 12.0

    @property
    def call_seconds(self) -> float:
        """The longest one client call can take: retries, then a last attempt that times out."""
        return self.retry_seconds + self.attempt_timeout_seconds

    def seconds_for(self, service: str) -> float:
        """The longest one call to ``service`` can take; a Marketo call may first wait its turn."""
        return self.call_seconds + (self.rate_wait_seconds if service == "marketo" else 0.0)


class _Deadline:
    def __init__(self, budget: TimeBudget, clock: Callable[[], float]) -> None:
        self._budget = budget
        self._clock = clock
        self._end = clock() + budget.total_seconds

    def allows_call(self, service: str) -> bool:
        return self._end - self._clock() >= self._budget.seconds_for(service)

    def require(self, service: str, step: str) -> None:
        """Raise (-> 503) rather than start a call that could outlive the webhook."""
        if not self.allows_call(service):
            raise ServiceUnavailableError(
                f"no time left to {step} within the flow step's {self._budget.total_seconds:.0f} s budget",
                service=service,
            )


@dataclass(frozen=True)
class _Candidate:
    """A Dynamics record the lookup found: it carries the person's id, or shares its email."""

    entity: str
    record_id: str
    marketo_key: str | None
    active: bool
    etag: str | None


class SyncPersonToMicrosoft:
    def __init__(
        self,
        marketo: MarketoClient,
        dataverse: DataverseClient,
        state: StateStore,
        mapping: FieldMapping,
        activity_log: ActivityLog,
        *,
        columns: Callable[[str], Mapping[str, Column]],
        budget: TimeBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.marketo = marketo
        self.dataverse = dataverse
        self.state = state
        self.mapping = mapping
        self.activity_log = activity_log
        self.columns = columns  # cached column metadata, for checking the lead before the create
        self.budget = budget or TimeBudget()
        self.clock = clock

    def run(self, marketo_id: int) -> FlowStepOutcome:
        deadline = _Deadline(self.budget, self.clock)
        live = self._live_link(marketo_id)
        if live is not None:
            return FlowStepOutcome("exists", live.dynamics_id, live.entity)
        deadline.require("marketo", "read the person")
        person = self._read_person(marketo_id)
        deadline.require("dataverse", "look for the person's record")
        candidate = self._choose(marketo_id, self._lookup(marketo_id, person), deadline)
        if candidate is not None:
            outcome = self._adopt(person, candidate, deadline)
            if outcome is not None:
                return outcome
        return self._create(person, deadline)

    # --- finding the person's record ----------------------------------------------------------

    def _live_link(self, marketo_id: int) -> Link | None:
        link = self.state.get_links_by_marketo([marketo_id]).get(marketo_id)
        if link is None:
            return None
        try:
            self.dataverse.get(ENTITY_SETS[link.entity], link.dynamics_id, select=[f"{link.entity}id"])
        except NotFoundError:
            # Deleted in Dynamics and the sync has not caught up yet: the person gets a new lead.
            self.state.delete_link(link)
            self.state.delete_shadow(marketo_id)
            return None
        return link

    def _read_person(self, marketo_id: int) -> dict[str, Any]:
        people = self.marketo.get_leads_by_ids([marketo_id], self.mapping.marketo_fields())
        if not people:
            raise PersonNotFound(f"Marketo person {marketo_id} does not exist")
        return people[0]

    def _lookup(self, marketo_id: int, person: Mapping[str, Any]) -> list[_Candidate]:
        """Contacts and leads that carry the person's id or share its email: one ``$batch``."""
        email = str(person.get(self.mapping.lead.email.marketo) or "").strip()
        parts = [BatchRequest("GET", self._lookup_path(entity, marketo_id, email)) for entity in LOOKUP_ORDER]
        candidates: list[_Candidate] = []
        for entity, answer in zip(LOOKUP_ORDER, self.dataverse.batch(parts), strict=True):
            if answer.error is not None:
                raise answer.error
            rows = answer.body.get("value", []) if isinstance(answer.body, dict) else []
            candidates.extend(self._candidate(entity, row) for row in rows)
        return candidates

    def _lookup_path(self, entity: str, marketo_id: int, email: str) -> str:
        key = self.mapping.links.dynamics_marketo_id
        clause = odata.eq(key, str(marketo_id))
        if email and self.mapping.options.match_on_email:
            # Unlinked records, and linked ones whose person may no longer exist (see _stale).
            column = self.mapping.entity(entity).email.dynamics
            clause = odata.or_(clause, odata.and_(odata.eq(column, email), odata.eq("statecode", 0)))
        query = {
            "$select": f"{entity}id,{key},statecode",
            "$filter": clause,
            "$orderby": "createdon asc",
            "$top": str(CANDIDATES_PER_TABLE),
        }
        encoded = "&".join(f"{name}={quote(value, safe=',')}" for name, value in query.items())
        return f"{ENTITY_SETS[entity]}?{encoded}"

    def _candidate(self, entity: str, row: Mapping[str, Any]) -> _Candidate:
        key = row.get(self.mapping.links.dynamics_marketo_id)
        return _Candidate(
            entity,
            str(row[f"{entity}id"]).lower(),
            str(key) if key not in (None, "") else None,
            row.get("statecode") == 0,
            row.get("@odata.etag"),
        )

    def _choose(
        self, marketo_id: int, candidates: list[_Candidate], deadline: _Deadline
    ) -> _Candidate | None:
        """An active record with the person's id; else an unlinked one with its email; else one
        with its email whose Marketo id names a person that no longer exists; else a closed
        record with its id (its key still blocks a new lead)."""
        mine = [c for c in candidates if c.marketo_key == str(marketo_id)]
        for candidate in mine:
            if candidate.active:
                return candidate
        free = self._not_linked(c for c in candidates if c.marketo_key is None and c.active)
        if free:
            return free[0]
        others = [c for c in candidates if c.active and c.marketo_key not in (None, str(marketo_id))]
        stale = self._stale(others, deadline)
        if stale:
            return stale[0]
        return mine[0] if mine else None

    def _stale(self, candidates: list[_Candidate], deadline: _Deadline) -> list[_Candidate]:
        """Records naming a person Marketo no longer has (one read for all of them)."""
        named = {int(c.marketo_key) for c in candidates if c.marketo_key and c.marketo_key.isdigit()}
        if not named or not deadline.allows_call("marketo"):
            return []
        alive = {int(p["id"]) for p in self.marketo.get_leads_by_ids(sorted(named), ["id"])}
        return [
            c
            for c in candidates
            if c.marketo_key and c.marketo_key.isdigit() and int(c.marketo_key) not in alive
        ]

    def _not_linked(self, candidates: Iterable[_Candidate]) -> list[_Candidate]:
        """Drop records the state store links to someone although their column is still empty."""
        listed = list(candidates)
        taken: set[tuple[str, str]] = set()
        for entity in LOOKUP_ORDER:
            ids = [c.record_id for c in listed if c.entity == entity]
            if ids:
                taken |= {(entity, i) for i in self.state.get_links_by_dynamics(entity, ids)}
        return [c for c in listed if (c.entity, c.record_id) not in taken]

    # --- linking an existing record ------------------------------------------------------------

    def _adopt(
        self, person: dict[str, Any], candidate: _Candidate, deadline: _Deadline
    ) -> FlowStepOutcome | None:
        """Link the person to ``candidate``; None when the record was taken meanwhile."""
        marketo_id = int(person["id"])
        link = Link(marketo_id, candidate.entity, candidate.record_id)
        if candidate.marketo_key == str(marketo_id):
            return self._restore(person, link, deadline)
        if not self._take(marketo_id, candidate):
            return None
        why = "linked to the unlinked Dynamics record with the same email"
        if candidate.marketo_key is not None:
            self._forget(candidate)
            why = (
                f"linked to the Dynamics record with the same email, whose Marketo id named person "
                f"{candidate.marketo_key}, which no longer exists in Marketo"
            )
        self._finish(person, link, deadline, action="linked", why=why)
        return FlowStepOutcome("exists", link.dynamics_id, link.entity)

    def _restore(self, person: dict[str, Any], link: Link, deadline: _Deadline) -> FlowStepOutcome:
        """The record already carries the person's id: nothing to write in Dynamics."""
        why = "the record already carries this person's id: link restored"
        self._finish(person, link, deadline, action="linked", why=why)
        return FlowStepOutcome("exists", link.dynamics_id, link.entity)

    def _forget(self, candidate: _Candidate) -> None:
        """The link of a person that no longer exists ends (the sync would drop it later)."""
        links = self.state.get_links_by_dynamics(candidate.entity, [candidate.record_id])
        old = links.get(candidate.record_id)
        if old is not None and str(old.marketo_id) == candidate.marketo_key:
            self.state.delete_link(old)
            self.state.delete_shadow(old.marketo_id)

    def _take(self, marketo_id: int, candidate: _Candidate) -> bool:
        """Write the person's id on a record, only if nobody wrote it since we read it (a record
        naming a person that no longer exists may still name it)."""
        key = self.mapping.links.dynamics_marketo_id
        entity_set = ENTITY_SETS[candidate.entity]
        etag = candidate.etag
        for _ in range(LINK_ATTEMPTS):
            try:
                self.dataverse.update(entity_set, candidate.record_id, {key: str(marketo_id)}, etag=etag)
                return True
            except ConflictError:
                # Changed since the lookup (an edit, another person's link) or the key is taken.
                try:
                    row = self.dataverse.get(entity_set, candidate.record_id, select=[key])
                except NotFoundError:
                    return False
                if row.get(key) == str(marketo_id):
                    return True
                if row.get(key) not in (None, "", candidate.marketo_key):
                    return False
                etag = row.get("@odata.etag")
        return False

    # --- creating the lead ---------------------------------------------------------------------

    def _lead_mapping(self) -> EntityMapping:
        """The lead mapping with its date columns' behaviours bound (from the cached metadata)."""
        lead = self.mapping.lead
        if not any(f.type in (FieldType.DATE, FieldType.DATETIME) for f in lead.fields):
            return lead
        columns = self.columns("lead")
        behaviors = {name: date_behavior(getattr(c, "date_behavior", None)) for name, c in columns.items()}
        return bind_dates(lead, behaviors, self.mapping.options.time_zone)

    def _currency(self, lead: EntityMapping, record: dict[str, Any]) -> dict[str, str]:
        """The mapping's currency for a lead created with money (one query, only then)."""
        money = [f for f in lead.fields if f.type is FieldType.MONEY and record.get(f.dynamics) is not None]
        if not money:
            return {}
        rows = self.dataverse.query(
            "transactioncurrencies",
            select=["transactioncurrencyid", "isocurrencycode"],
            filter=odata.eq("isocurrencycode", money[0].currency),
        )
        found = [str(r["transactioncurrencyid"]) for r in rows]
        return {"transactioncurrencyid@odata.bind": f"/transactioncurrencies({found[0]})"} if found else {}

    def _create(self, person: dict[str, Any], deadline: _Deadline) -> FlowStepOutcome:
        marketo_id = int(person["id"])
        lead = self._lead_mapping()
        values = initial_values(lead, person, Side.MARKETO)
        try:
            record = {
                f.dynamics: to_dynamics(f, values[f.marketo]) for f in lead.fields if f.marketo in values
            }
        except UnmappedOptionError as exc:
            return self._failed(marketo_id, "mdsync-option", str(exc), (), deadline)
        record = {k: v for k, v in record.items() if v is not None}
        record.update(self._currency(lead, record))
        problems = validate_write(
            self.columns("lead"),
            record,
            create=True,
            enforce_business_required=self.mapping.options.enforce_business_required,
        )
        if problems:
            fields = tuple(p.column for p in problems)
            return self._failed(marketo_id, "mdsync-validation", describe(problems), fields, deadline)
        key = {self.mapping.links.dynamics_marketo_id: str(marketo_id)}
        select = ["leadid", *self.mapping.dynamics_columns("lead")]
        deadline.require("dataverse", "create the lead")  # after the first call's metadata reads
        try:
            row = self.dataverse.upsert_by_key("leads", key, record, create_only=True, select=select)
        except ConflictError:
            # A concurrent call created it first: that lead is the person's lead.
            row = self.dataverse.get("leads", key, select=["leadid"])
            return self._restore(person, Link(marketo_id, "lead", str(row["leadid"]).lower()), deadline)
        except ValidationError as exc:
            fields = exc.fields or tuple(record)
            return self._failed(marketo_id, exc.code or "dataverse", exc.message, fields, deadline)
        link = Link(marketo_id, "lead", str(row["leadid"]).lower())
        # Dataverse fills defaults (donotemail = false...): what the sync would copy back to Marketo
        # goes out with the link fields, so the lead's create notice finds nothing left to write.
        plan = reconcile(lead, person, row, values)
        why = "flow step created a lead"
        self._finish(person, link, deadline, action="created_in_dynamics", why=why, plan=plan)
        return FlowStepOutcome("created", link.dynamics_id, "lead")

    # --- after the commit point ----------------------------------------------------------------

    def _finish(
        self,
        person: dict[str, Any],
        link: Link,
        deadline: _Deadline,
        *,
        action: str,
        why: str,
        plan: Plan | None = None,
    ) -> None:
        """Store the link, then show it in Marketo. Nothing here may fail the answer: the record
        is linked in Dynamics already, and the worker repairs the Marketo side."""
        stored = self.state.get_links_by_marketo([link.marketo_id]).get(link.marketo_id)
        if stored is None or (stored.entity, stored.dynamics_id) != (link.entity, link.dynamics_id):
            self.state.put_link(link)
        changes = self._link_fields(person, link)
        if plan is not None:
            # The shadow claims Marketo's new values only once they are written: a worker run in
            # between then copies them again (harmless) instead of undoing them in Dynamics.
            self._put_shadow(link, plan, wrote_marketo=False)
            changes |= _marketo_values(plan)
        note = self._push(link, changes, deadline) if changes else None
        if plan is not None and note is None and plan.towards(Side.MARKETO):
            self._put_shadow(link, plan, wrote_marketo=True)
        detail = f"{why}; {note}" if note else why
        self.state.append_log(
            [LogEntry(link.marketo_id, link.dynamics_id, link.entity, action, detail, at=datetime.now(UTC))]
        )

    def _put_shadow(self, link: Link, plan: Plan, *, wrote_marketo: bool) -> None:
        values = plan.shadow_after(wrote_marketo=wrote_marketo, wrote_dynamics=False)
        self.state.put_shadows([Shadow(link.marketo_id, values)])

    def _push(self, link: Link, changes: dict[str, Any], deadline: _Deadline) -> str | None:
        """Write the person's link fields (and the new lead's defaults); a note if not written."""
        if not deadline.allows_call("marketo"):
            return "Marketo fields left to the sync (no time left)"
        try:
            (result,) = self.marketo.push_leads(
                [{"id": link.marketo_id, **changes}], action="updateOnly", lookup_field="id"
            )
        except (TransientError, PermanentError) as exc:
            log.warning("flow step for person %d: Marketo not written: %s", link.marketo_id, redact(str(exc)))
            return f"Marketo fields left to the sync ({exc})"
        if not result.ok:
            reasons = "; ".join(f"{r.code} {r.message}" for r in result.reasons) or result.status
            return f"Marketo refused the fields: {reasons}"
        return None

    def _link_fields(self, person: Mapping[str, Any], link: Link) -> dict[str, Any]:
        names = self.mapping.links
        wanted: dict[str, Any] = {
            names.marketo_type: "Lead" if link.entity == "lead" else "Contact",
            names.marketo_is_deleted: False,
        }
        if link.entity == "lead":
            wanted |= {names.marketo_lead_id: link.dynamics_id, names.marketo_contact_id: None}
        else:
            wanted[names.marketo_contact_id] = link.dynamics_id
        return {
            k: v
            for k, v in wanted.items()
            if person.get(k) != v and not (v is False and person.get(k) is None)
        }

    def _failed(
        self, marketo_id: int, code: str, message: str, fields: tuple[str, ...], deadline: _Deadline
    ) -> FlowStepOutcome:
        detail = f"flow step: Dynamics refused the lead [{code}]: {message}"
        if not deadline.allows_call("marketo"):
            detail += " (not added to the Activity Log: no time left)"
        else:
            try:
                self.activity_log.record([Failure(marketo_id, "lead", None, code, message, fields)])
            except (TransientError, PermanentError) as exc:
                log.warning(
                    "flow step for person %d: Activity Log not written: %s", marketo_id, redact(str(exc))
                )
                detail += f" (not added to the Activity Log: {exc})"
        entry = LogEntry(marketo_id, None, "lead", "failed", detail, fields, datetime.now(UTC))
        self.state.append_log([entry])
        return FlowStepOutcome("failed", reason=message)


def _marketo_values(plan: Plan) -> dict[str, Any]:
    """What the plan copies to Marketo, without the values Marketo cannot take as they are (the
    worker reports those when it reconciles the lead's create notice)."""
    values: dict[str, Any] = {}
    for decision in plan.towards(Side.MARKETO):
        try:
            values[decision.field.marketo] = to_marketo(decision.field, decision.value)
        except UnmappedOptionError:
            continue
    return values
