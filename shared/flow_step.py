""" "Sync Person to Microsoft": create a Dynamics lead for a person now, if it has none.

Called from a Marketo trigger campaign's Call Webhook step. It never updates an existing record
(only the background sync moves updates):

* the person has a live linked lead or contact  -> ``exists``, nothing written;
* an unlinked lead or contact has the same email -> link it (only the link columns are written),
  ``exists`` with its id;
* otherwise                                     -> create a lead from the person's mapped fields,
  read fresh from Marketo, link both ways, ``created``.

Why two concurrent calls create one lead: the lead is created with a create-only upsert
(``If-None-Match: *``) addressed by the alternate key on the Marketo-id column. Dataverse itself
then refuses the second create (412) inside its own transaction, whatever the timing, so the
guarantee holds across function instances, survives a lost state-store write and needs no lease
that could expire while Dataverse is slow. The loser reads the winner's lead and answers
``exists``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.errors import ConflictError, NotFoundError, ValidationError
from shared.mapping import FieldMapping, Side
from shared.marketo.client import MarketoClient
from shared.normalize import UnmappedOptionError, to_dynamics
from shared.ports import Link, LogEntry, Shadow, StateStore
from shared.reconcile import initial_values
from shared.sync.activity_log import ActivityLog, Failure
from shared.sync.validation import Column, describe, validate_write

log = logging.getLogger(__name__)

Status = Literal["created", "exists", "failed"]


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
    ) -> None:
        self.marketo = marketo
        self.dataverse = dataverse
        self.state = state
        self.mapping = mapping
        self.activity_log = activity_log
        self.columns = columns  # the worker's cached column metadata

    def run(self, marketo_id: int) -> FlowStepOutcome:
        live = self._live_link(marketo_id)
        if live is not None:
            return FlowStepOutcome("exists", live.dynamics_id, live.entity)
        people = self.marketo.get_leads_by_ids([marketo_id], self.mapping.marketo_fields())
        if not people:
            raise PersonNotFound(f"Marketo person {marketo_id} does not exist")
        person = people[0]
        if self.mapping.options.match_on_email:
            match = self._unlinked_match(person)
            if match is not None:
                entity, record_id = match
                return self._link(
                    person, entity, record_id, "linked to the unlinked Dynamics record with the same email"
                )
        return self._create(person)

    def _live_link(self, marketo_id: int) -> Link | None:
        link = self.state.get_links_by_marketo([marketo_id]).get(marketo_id)
        if link is None:
            return None
        entity_set = f"{link.entity}s"
        try:
            self.dataverse.get(entity_set, link.dynamics_id, select=[f"{link.entity}id"])
        except NotFoundError:
            # Deleted in Dynamics and the sync has not caught up yet: the person gets a new lead.
            self.state.delete_link(link)
            self.state.delete_shadow(marketo_id)
            return None
        return link

    def _unlinked_match(self, person: dict[str, Any]) -> tuple[str, str] | None:
        email = str(person.get("email") or "").strip()
        if not email:
            return None
        key = self.mapping.links.dynamics_marketo_id
        for entity in ("contact", "lead"):
            flt = f"{odata.eq('emailaddress1', email)} and {key} eq null and statecode eq 0"
            for row in self.dataverse.query(f"{entity}s", select=[f"{entity}id"], filter=flt, top=1):
                return entity, str(row[f"{entity}id"]).lower()
        return None

    def _link(self, person: dict[str, Any], entity: str, record_id: str, why: str) -> FlowStepOutcome:
        marketo_id = int(person["id"])
        key = self.mapping.links.dynamics_marketo_id
        self.dataverse.update(f"{entity}s", record_id, {key: str(marketo_id)})
        self._finish(person, Link(marketo_id, entity, record_id), why, shadow=None)
        return FlowStepOutcome("exists", record_id, entity)

    def _create(self, person: dict[str, Any]) -> FlowStepOutcome:
        marketo_id = int(person["id"])
        lead = self.mapping.lead
        values = initial_values(lead, person, Side.MARKETO)
        key = self.mapping.links.dynamics_marketo_id
        try:
            record = {
                f.dynamics: to_dynamics(f, values[f.marketo]) for f in lead.fields if f.marketo in values
            }
        except UnmappedOptionError as exc:
            return self._failed(marketo_id, "mdsync-option", str(exc), ())
        record = {k: v for k, v in record.items() if v is not None}
        problems = validate_write(
            self.columns("lead"),
            record,
            create=True,
            enforce_business_required=self.mapping.options.enforce_business_required,
        )
        if problems:
            return self._failed(
                marketo_id, "mdsync-validation", describe(problems), tuple(p.column for p in problems)
            )
        try:
            row = self.dataverse.upsert_by_key("leads", {key: str(marketo_id)}, record, create_only=True)
        except ConflictError:
            # A concurrent call created it first: that lead is the person's lead.
            row = self.dataverse.get("leads", {key: str(marketo_id)}, select=["leadid"])
            return FlowStepOutcome("exists", str(row["leadid"]).lower(), "lead")
        except ValidationError as exc:
            return self._failed(marketo_id, exc.code or "dataverse", exc.message, exc.fields or tuple(record))
        lead_id = str(row["leadid"]).lower()
        self._finish(person, Link(marketo_id, "lead", lead_id), "created a lead", shadow=values)
        return FlowStepOutcome("created", lead_id, "lead")

    def _finish(self, person: dict[str, Any], link: Link, why: str, shadow: dict[str, Any] | None) -> None:
        names = self.mapping.links
        update = {
            "id": link.marketo_id,
            names.marketo_type: "Lead" if link.entity == "lead" else "Contact",
            names.marketo_lead_id if link.entity == "lead" else names.marketo_contact_id: link.dynamics_id,
            names.marketo_is_deleted: False,
        }
        self.state.put_link(link)
        if shadow is not None:
            self.state.put_shadows([Shadow(link.marketo_id, shadow)])
        self.marketo.push_leads([update], action="updateOnly", lookup_field="id")
        self.state.append_log(
            [LogEntry(link.marketo_id, link.dynamics_id, link.entity, "flow_step", why, at=datetime.now(UTC))]
        )

    def _failed(self, marketo_id: int, code: str, message: str, fields: tuple[str, ...]) -> FlowStepOutcome:
        failure = Failure(marketo_id, "lead", None, code, message, fields)
        self.activity_log.record([failure])
        self.state.append_log(
            [
                LogEntry(
                    marketo_id,
                    None,
                    "lead",
                    "failed",
                    f"flow step: Dynamics refused the lead [{code}]: {message}",
                    fields,
                    datetime.now(UTC),
                )
            ]
        )
        return FlowStepOutcome("failed", reason=message)
