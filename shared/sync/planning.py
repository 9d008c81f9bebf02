"""Decide what to write for each linked person, before anything is written: a
:class:`~shared.sync.batch.Decision` per pair, which the writes phase carries out.

A pair loading settled keeps that settlement; otherwise (``Settled`` but for the last case,
``Reconciled`` for it):

* the person is gone from Marketo (its deletion confirmed: see ``vanished``) -> drop the link,
  clear the Marketo id on the Dynamics record, delete nothing in Dynamics;
* the record is gone from Dynamics -> drop the link, set "Microsoft Is Deleted" on the person;
* the record is excluded by the sync filter -> nothing;
* otherwise the reconcile rules decide per field (a pair linked in this batch is a first link:
  the first-link rule decides, whatever shadow the person has from an earlier link), and the
  link fields are kept current on both sides.

Every value is checked before it is sent. One the other side cannot take as it is (an option
the value map does not name, text longer than the field holds, money in another currency than
the mapping's, a value Dataverse's metadata refuses) is left out of the write and reported on
the person, in the sync log and the Activity Log; the person's other fields are written. A value
Marketo did not take the last time (``shared.reconcile``) is reported the same way, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.mapping import EntityMapping, FieldMap, FieldMapping, FieldType, Side
from shared.normalize import UnmappedOptionError, to_dynamics, to_marketo
from shared.notices import Kind, Notice, Source
from shared.ports import Link
from shared.reconcile import FieldDecision, MarketoNews, Plan, reconcile
from shared.sync.batch import Batch, Decision, Loaded, Pair, Reconciled, Row, Settled
from shared.sync.journal import Journal
from shared.sync.reads import MARKETO_STRING_LENGTH, DynamicsReader, MarketoReader
from shared.sync.validation import Column, Problem, describe, validate_write

NOT_COPIED = "mdsync-validation"  # a value checked and left out of the write
NOT_TAKEN = "mdsync-not-taken"
CURRENCY_BIND = "transactioncurrencyid@odata.bind"


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


Columns = Callable[[str], Mapping[str, Column]]


def currency_reference(code: str | None, currencies: Callable[[], Mapping[str, str]]) -> dict[str, str]:
    """The reference that gives a row currency ``code`` (``currencies``: transactioncurrencyid ->
    ISO code); empty when the organization has no such currency (Dataverse then uses its
    default, and the next read reports the difference)."""
    by_code = {iso: currency_id for currency_id, iso in currencies().items()}
    currency_id = by_code.get(code or "")
    return {CURRENCY_BIND: f"/transactioncurrencies({currency_id})"} if currency_id else {}


def currency_binding(
    entity: EntityMapping, record: Mapping[str, Any], currencies: Callable[[], Mapping[str, str]]
) -> dict[str, str]:
    """For a new row: the reference to the mapping's currency, when it is created with money."""
    for field in entity.fields:
        if field.type is FieldType.MONEY and record.get(field.dynamics) is not None:
            return currency_reference(field.currency, currencies)
    return {}


def marketo_news(notices: Sequence[Notice]) -> MarketoNews:
    """What the notices say about the person in Marketo: the changes written through the API
    (mdsync's own, most likely), the changes anyone else made, and whether Marketo's activities
    since mdsync's last write have been read."""
    echoes: dict[str, list[tuple[object, object]]] = {}
    others: dict[str, list[tuple[object, object]]] = {}
    seen = False
    for notice in notices:
        if notice.source is not Source.MARKETO:
            continue
        if notice.kind is Kind.CONFIRM:
            seen = True
            continue
        mine = notice.own_write and notice.kind is Kind.UPDATED
        seen = seen or mine
        if notice.snapshot:
            continue  # a campaign's values carry no old value to check a write against
        for name, change in notice.changes.items():
            (echoes if mine else others).setdefault(name, []).append((change.old, change.new))
    return MarketoNews(echoes, others, seen)


def release_marketo_id(mapping: FieldMapping, pair: Pair) -> dict[str, Any]:
    """The Dynamics write that clears the record's Marketo-id column while it still names this
    pair's person (the link ends)."""
    column = mapping.links.dynamics_marketo_id
    if pair.dynamics is not None and str(pair.dynamics.get(column) or "") == str(pair.marketo_id):
        return {column: None}
    return {}


@dataclass
class _Draft:
    """The writes of one pair while the planner decides them, frozen into a :class:`Reconciled`."""

    marketo: dict[str, Any] = dataclasses.field(default_factory=dict)
    dynamics: dict[str, Any] = dataclasses.field(default_factory=dict)
    dropped: set[str] = dataclasses.field(default_factory=set)


class Planner:
    def __init__(self, mapping: FieldMapping, rows: DynamicsReader, people: MarketoReader) -> None:
        self.mapping = mapping
        self.rows = rows
        self.people = people

    def columns(self, entity: str) -> Mapping[str, Column]:
        return self.rows.columns(entity)

    def entity(self, name: str) -> EntityMapping:
        return self.rows.entity(name)

    def plan_all(self, batch: Batch, loaded: Loaded, journal: Journal) -> dict[int, Decision]:
        """A decision per linked pair: the settlement loading made, or a plan (the one loading
        made on trial, for a pair its notices carried, with what it reported); each carries how
        the pair was linked in this batch, if it was."""
        decisions: dict[int, Decision] = {}
        for marketo_id, pair in batch.pairs.items():
            linked = loaded.linked.get(marketo_id)
            settled = loaded.settled.get(marketo_id)
            first_link = linked is not None and linked.first_link
            if settled is not None:
                decision: Decision = settled
            elif linked is None and marketo_id in loaded.planned:
                trial = loaded.planned[marketo_id]
                journal.adopt(trial.journal)
                decision = trial.decision
            else:
                decision = self.plan(pair, journal, first_link=first_link)
            decisions[marketo_id] = replace(decision, linked=linked)
        return decisions

    def plan(self, pair: Pair, journal: Journal, *, first_link: bool = False) -> Decision:
        """What to write for one pair (``first_link``: decided by the first-link rule)."""
        if pair.marketo is None:
            return self._marketo_deleted(pair)
        if pair.dynamics is None:
            return self._dynamics_deleted(pair)
        if excluded(self.mapping, pair.dynamics):
            filtered = f"excluded by the sync filter ({self.mapping.options.sync_filter})"
            journal.note(pair.link, "skipped", filtered)
            return Settled()
        return self.decide_fields(pair, journal, first_link=first_link)

    def _marketo_deleted(self, pair: Pair) -> Settled:
        return Settled(
            unlink="person deleted in Marketo; nothing deleted in Dynamics",
            dynamics_changes=release_marketo_id(self.mapping, pair),
        )

    def _dynamics_deleted(self, pair: Pair) -> Settled:
        names = self.mapping.links
        assert pair.marketo is not None
        wanted = {
            names.marketo_is_deleted: True,
            names.marketo_lead_id: None,
            names.marketo_contact_id: None,
            names.marketo_type: None,
        }
        return Settled(
            unlink=f"{pair.entity} deleted in Dynamics; Microsoft Is Deleted set on the person",
            marketo_changes={k: v for k, v in wanted.items() if pair.marketo.get(k) != v},
        )

    # --- a linked pair ---------------------------------------------------------------------------

    def decide_fields(self, pair: Pair, journal: Journal, *, first_link: bool) -> Reconciled:
        """Decide every mapped field, add the link fields, check every value before it is sent."""
        assert pair.marketo is not None
        assert pair.dynamics is not None
        shadow = pair.shadow.values if pair.shadow is not None and not first_link else None
        plan = reconcile(
            self.entity(pair.entity),
            pair.marketo,
            pair.dynamics,
            shadow,
            first_link=self.mapping.options.first_link,
            news=marketo_news(pair.notices),
        )
        draft = _Draft()
        to_marketo, to_dynamics = self._copy_decided(pair, plan, draft, journal)
        draft.marketo.update(link_fields(self.mapping, pair.link, pair.marketo))
        column = self.mapping.links.dynamics_marketo_id
        if str(pair.dynamics.get(column) or "") != str(pair.marketo_id):
            draft.dynamics[column] = str(pair.marketo_id)
        if to_marketo:
            self._report(pair, draft, to_marketo, journal, direction="to_marketo")
        self.validate(pair, draft, to_dynamics, journal)
        return Reconciled(
            plan=plan,
            marketo_changes=draft.marketo,
            dynamics_changes=draft.dynamics,
            dropped=frozenset(draft.dropped),
        )

    def _copy_decided(
        self, pair: Pair, plan: Plan, draft: _Draft, journal: Journal
    ) -> tuple[list[Problem], list[Problem]]:
        """Each decided value into the draft; the values each side cannot take (Marketo's,
        Dynamics') as problems. Collisions and values Marketo did not take are reported."""
        to_marketo: list[Problem] = []
        to_dynamics: list[Problem] = []
        for decision in plan.decisions:
            if decision.collision:
                journal.collision(pair.link, decision)
            if decision.refused:
                journal.failed(
                    pair.link,
                    "not taken",
                    NOT_TAKEN,
                    decision.refused,
                    (decision.field.marketo,),
                    direction="to_marketo",
                )
            if decision.to_marketo:
                self._copy(pair, draft, decision, Side.MARKETO, to_marketo)
            if decision.to_dynamics:
                self._copy(pair, draft, decision, Side.DYNAMICS, to_dynamics)
        return to_marketo, to_dynamics

    def _copy(
        self, pair: Pair, draft: _Draft, decision: FieldDecision, side: Side, problems: list[Problem]
    ) -> None:
        """Convert the decided value for ``side`` and add it to the write, unless ``side``
        cannot take it as it is (then it is a problem, reported)."""
        fmap = decision.field
        towards_marketo = side is Side.MARKETO
        name = fmap.marketo if towards_marketo else fmap.dynamics
        try:
            value = to_marketo(fmap, decision.value) if towards_marketo else to_dynamics(fmap, decision.value)
        except UnmappedOptionError as exc:
            problems.append(Problem(name, str(exc)))
            return
        why = self._cannot_hold(pair, fmap, value, side)
        if why:
            problems.append(Problem(name, why))
            return
        if towards_marketo:
            draft.marketo[name] = value
            return
        if fmap.type is FieldType.MONEY and value is not None:
            self._bind_currency(pair, draft, fmap)
        draft.dynamics[name] = value

    def _cannot_hold(self, pair: Pair, fmap: FieldMap, value: object, side: Side) -> str:
        """Why ``side`` cannot take ``value`` as it is ("" when it can). Dataverse's own limits
        are checked with the whole write against its metadata (``validate``)."""
        if fmap.type is FieldType.MONEY and value is not None:
            return self._currency_problem(pair, fmap)
        if side is Side.MARKETO and isinstance(value, str) and len(value) > MARKETO_STRING_LENGTH:
            length = self.people.length(fmap.marketo)
            if length is not None and len(value) > length:
                return (
                    f"{fmap.dynamics} is {len(value)} characters long; Marketo's {fmap.marketo} holds "
                    f"{length}: not copied (Marketo would cut it)"
                )
        return ""

    # --- money -----------------------------------------------------------------------------------

    def _currency_problem(self, pair: Pair, fmap: FieldMap) -> str:
        """Why a money value cannot move between this pair's two sides ("" when it can): the
        Dynamics row holds its money in another currency than the mapping names."""
        row_currency = str((pair.dynamics or {}).get("_transactioncurrencyid_value") or "").lower()
        if not row_currency:
            return ""
        code = self.rows.currencies().get(row_currency, "?")
        if code == fmap.currency:
            return ""
        return (
            f"{fmap.dynamics} is in {code} on this {pair.entity}; the mapping syncs {fmap.marketo} "
            f"in {fmap.currency}: not copied"
        )

    def _bind_currency(self, pair: Pair, draft: _Draft, fmap: FieldMap) -> None:
        """A row without a currency gets the mapping's, so the value means what Marketo meant."""
        if not (pair.dynamics or {}).get("_transactioncurrencyid_value"):
            draft.dynamics.update(currency_reference(fmap.currency, self.rows.currencies))

    # --- what is left out ------------------------------------------------------------------------

    def validate(self, pair: Pair, draft: _Draft, problems: list[Problem], journal: Journal) -> None:
        """Check the Dynamics write against the table's metadata; every column that would be
        refused is left out (with the ones already found), reported, and the rest is written."""
        if draft.dynamics:
            problems = problems + validate_write(
                self.columns(pair.entity),
                draft.dynamics,
                create=False,
                enforce_business_required=self.mapping.options.enforce_business_required,
            )
        if problems:
            for problem in problems:
                draft.dynamics.pop(problem.column, None)
            self._report(pair, draft, problems, journal, direction="to_dynamics")

    def _report(
        self, pair: Pair, draft: _Draft, problems: list[Problem], journal: Journal, *, direction: str
    ) -> None:
        entity = self.mapping.entity(pair.entity)
        names = []
        for problem in problems:
            fmap = entity.by_marketo(problem.column) if direction == "to_marketo" else None
            fmap = fmap or entity.by_dynamics(problem.column)
            if fmap is not None:
                draft.dropped.add(fmap.marketo)
            names.append(problem.column)
        if direction == "to_marketo":
            for name in names:
                draft.marketo.pop(name, None)
        journal.failed(pair.link, "validation", NOT_COPIED, describe(problems), names, direction=direction)
