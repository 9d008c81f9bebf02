"""What to write for each pair found, decided by the live sync's own rules.

A pair is planned by the worker's :class:`~shared.sync.planning.Planner`: a pair linked for the
first time by the first-link rule (``shared.reconcile.decide_first_link``: by default Dynamics,
the system of record, fills Marketo where both hold a value, and a blank never overwrites a
value), a pair already linked by the collision rules against its shadow; every value checked
before it is sent (one the other side cannot take is left out and reported on the person); the
link fields kept current on both sides. A person to create gets the fields the worker gives a
person it creates (``shared.sync.linking.new_person``).

What each pair needs written is staged (``pairs``) with the shadow to store once both writes
have succeeded; the preview counts, per field, what would move which way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.backfill.context import Context
from shared.backfill.job import JobState
from shared.backfill.staging import CREATES, PAIRS, Item, person_bucket, record_bucket
from shared.ports import Link
from shared.reconcile import Action, FieldDecision
from shared.sync.batch import Pair, Reconciled, Unwritten
from shared.sync.journal import Journal
from shared.sync.linking import new_person


@dataclass(frozen=True)
class Found:
    """A person and a record that belong together, and how that was found."""

    marketo_id: int
    person: dict[str, Any]
    record: dict[str, Any]  # {"e": entity, "r": row}
    how: str  # "link", "stored id", "email", "rule"

    @property
    def linked(self) -> bool:
        return self.how == "link"


def outcome(decision: FieldDecision) -> str | None:
    """How the preview names what a decision does to the field ("" when nothing moves)."""
    if decision.action is Action.IN_SYNC:
        return None
    if decision.to_marketo:
        return "to_marketo_fills_blank" if decision.marketo is None else "to_marketo_replaces"
    if decision.to_dynamics:
        return "to_dynamics_fills_blank" if decision.dynamics is None else "to_dynamics_replaces"
    return str(decision.action.value)


def plan_pairs(ctx: Context, job: JobState, found: Sequence[Found]) -> None:
    if not found:
        return
    linked = [f.marketo_id for f in found if f.linked]
    shadows = ctx.state.get_shadows(linked) if linked else {}
    journal = Journal(0)
    items: list[Item] = []
    for each in found:
        entity, row = each.record["e"], each.record["r"]
        dynamics_id = str(row[f"{entity}id"]).lower()
        shadow = shadows.get(each.marketo_id) if each.linked else None
        pair = Pair(
            Link(each.marketo_id, entity, dynamics_id), marketo=each.person, dynamics=row, shadow=shadow
        )
        decision = ctx.planner.decide_fields(pair, journal, first_link=shadow is None)
        _preview(job, pair, decision)
        stored = pair.shadow_to_store(decision, Unwritten())  # the shadow once both writes are done
        job.count(f"pairs_by_{each.how.replace(' ', '_')}")
        job.count("pairs")
        job.count("pairs_writing_marketo", 1 if decision.marketo_changes else 0)
        job.count("pairs_writing_dynamics", 1 if decision.dynamics_changes else 0)
        value = {
            "m": each.marketo_id,
            "e": entity,
            "d": dynamics_id,
            "how": each.how,
            "new": not each.linked,
            "mc": dict(decision.marketo_changes),
            "dc": dict(decision.dynamics_changes),
            "sh": stored.values if stored is not None else None,
            "et": stored.etag if stored is not None else "",
        }
        items.append(Item(person_bucket(each.marketo_id), str(each.marketo_id), value))
    ctx.staging.put(PAIRS, items)
    for entry in journal.entries:
        if entry.action == "failed":
            job.count("values_not_copied", max(1, len(entry.fields)))
            for name in entry.fields:
                job.field_outcome(f"{entry.entity}.{name}", "cannot_copy")
    if not job.options.dry_run:
        report(ctx, journal)


def _preview(job: JobState, pair: Pair, reconciled: Reconciled) -> None:
    for decision in reconciled.plan.decisions:
        named = outcome(decision)
        if named:
            job.field_outcome(f"{pair.entity}.{decision.field.marketo}", named)


def report(ctx: Context, journal: Journal) -> None:
    """The journal's entries to the sync log, its failures to the persons' Activity Logs."""
    if journal.entries:
        ctx.state.append_log(journal.entries)
    if journal.failures:
        ctx.activity_log.record(journal.failures)


def stage_creates(ctx: Context, job: JobState, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Persons to create, one per record (``records``: key and staged value), with the fields the
    worker would give them."""
    items = []
    for key, value in records:
        entity, row = value["e"], value["r"]
        dynamics_id = str(row[f"{entity}id"]).lower()
        person, values = new_person(ctx.planner, ctx.mapping, Link(0, entity, dynamics_id), row)
        items.append(
            Item(
                record_bucket(entity, dynamics_id),
                key,
                {"e": entity, "d": dynamics_id, "rec": person, "vals": values},
            )
        )
    ctx.staging.put(CREATES, items)
    job.count("persons_to_create", len(items))
