"""Decide what to write for each linked person, before anything is written.

* the person is gone from Marketo -> drop the link, clear the Marketo id on the Dynamics record,
  delete nothing in Dynamics;
* the record is gone from Dynamics -> drop the link, set "Microsoft Is Deleted" on the person;
* the record is excluded by the sync filter -> nothing;
* otherwise the reconcile rules decide per field, the link fields are kept current on both sides,
  and the Dynamics write is checked against the table's metadata: a write that would be refused
  is not sent, and the refusal goes to the person's Activity Log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.mapping import FieldMapping
from shared.normalize import UnmappedOptionError, to_dynamics, to_marketo
from shared.ports import Link
from shared.reconcile import Action, reconcile
from shared.sync.batch import Pair, Row
from shared.sync.journal import Journal
from shared.sync.validation import Column, Problem, describe, validate_write

Columns = Callable[[str], Mapping[str, Column]]


def excluded(mapping: FieldMapping, row: Row) -> bool:
    """The sync filter: rows whose filter column is false are not synced (missing/null are)."""
    column = mapping.options.sync_filter
    return column is not None and row.get(column) is False


def link_fields(mapping: FieldMapping, link: Link, person: Row) -> dict[str, Any]:
    """The Marketo link fields that differ from what ``person`` shows for ``link``."""
    names = mapping.links
    is_lead = link.entity == "lead"
    wanted: dict[str, Any] = {
        names.marketo_type: "Lead" if is_lead else "Contact",
        names.marketo_lead_id: link.dynamics_id if is_lead else person.get(names.marketo_lead_id),
        names.marketo_contact_id: None if is_lead else link.dynamics_id,
        names.marketo_is_deleted: False,
    }
    return {
        name: value
        for name, value in wanted.items()
        if person.get(name) != value and not (value is False and person.get(name) is None)
    }


class Planner:
    def __init__(self, mapping: FieldMapping, columns: Columns) -> None:
        self.mapping = mapping
        self.columns = columns

    def plan(self, pair: Pair, journal: Journal) -> None:
        if pair.settled:
            return
        if pair.marketo is None:
            self._marketo_deleted(pair)
        elif pair.dynamics is None:
            self._dynamics_deleted(pair)
        elif excluded(self.mapping, pair.dynamics):
            pair.settled = True
            journal.note(
                pair.link, "skipped", f"excluded by the sync filter ({self.mapping.options.sync_filter})"
            )
        else:
            self.reconcile(pair, journal)

    def _marketo_deleted(self, pair: Pair) -> None:
        pair.settled = True
        pair.unlink = "person deleted in Marketo; nothing deleted in Dynamics"
        column = self.mapping.links.dynamics_marketo_id
        if pair.dynamics is not None and str(pair.dynamics.get(column) or "") == str(pair.marketo_id):
            pair.dynamics_changes[column] = None

    def _dynamics_deleted(self, pair: Pair) -> None:
        pair.settled = True
        pair.unlink = f"{pair.entity} deleted in Dynamics; Microsoft Is Deleted set on the person"
        names = self.mapping.links
        assert pair.marketo is not None
        wanted = {
            names.marketo_is_deleted: True,
            names.marketo_lead_id: None,
            names.marketo_contact_id: None,
            names.marketo_type: None,
        }
        pair.marketo_changes.update({k: v for k, v in wanted.items() if pair.marketo.get(k) != v})

    def reconcile(self, pair: Pair, journal: Journal) -> None:
        """Decide every mapped field (no shadow: a first sync), add the link fields, validate."""
        assert pair.marketo is not None
        assert pair.dynamics is not None
        entity = self.mapping.entity(pair.entity)
        shadow = pair.shadow.values if pair.shadow is not None else None
        pair.plan = reconcile(entity, pair.marketo, pair.dynamics, shadow)
        problems: list[Problem] = []
        for decision in pair.plan.decisions:
            if decision.collision:
                journal.collision(pair.link, decision)
            if decision.action is Action.TO_MARKETO:
                pair.marketo_changes[decision.field.marketo] = to_marketo(decision.field, decision.value)
            elif decision.action is Action.TO_DYNAMICS:
                try:
                    value = to_dynamics(decision.field, decision.value)
                except UnmappedOptionError as exc:
                    problems.append(Problem(decision.field.dynamics, str(exc)))
                    continue
                pair.dynamics_changes[decision.field.dynamics] = value
        pair.marketo_changes.update(link_fields(self.mapping, pair.link, pair.marketo))
        column = self.mapping.links.dynamics_marketo_id
        if str(pair.dynamics.get(column) or "") != str(pair.marketo_id):
            pair.dynamics_changes[column] = str(pair.marketo_id)
        self.validate(pair, problems, journal)

    def validate(self, pair: Pair, problems: list[Problem], journal: Journal) -> None:
        """Refuse the whole Dynamics write of a person if any part of it would be refused."""
        if pair.dynamics_changes:
            problems = problems + validate_write(
                self.columns(pair.entity),
                pair.dynamics_changes,
                create=False,
                enforce_business_required=self.mapping.options.enforce_business_required,
            )
        if not problems:
            return
        journal.failed(
            pair.link, "validation", "mdsync-validation", describe(problems), [p.column for p in problems]
        )
        pair.dynamics_changes.clear()
        pair.wrote_dynamics = False
