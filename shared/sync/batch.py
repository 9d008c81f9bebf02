"""The working state of one batch: the persons its notices concern, and what each phase decides.

A batch sorts its notices three ways:

* ``pairs``: linked persons (a Marketo person and its Dynamics lead or contact), keyed by
  Marketo id; every notice about either side of a pair joins that pair;
* ``orphans``: Dynamics leads and contacts no person is linked to (new, or unlinked);
* ``unlinked_persons``: Marketo persons without a link (new in Marketo, or their record is gone).

Transient faults put a pair's notices in ``retry`` (rescheduled with backoff); permanent faults
that are not the person's data put them in ``give_up`` (parked, replayable).

A :class:`Pair` holds what was observed of a person: its notices, its link, the two sides as read
and its shadow, all set while the batch is grouped and loaded. What the phases decide they hand
on as values:

* loading returns :class:`Loaded`: the persons read, the pairs it linked (:class:`Linked`: a
  qualification or a merge moved the person), the pairs it settled (:class:`Settled`) and the
  pairs it planned on trial (:class:`Trial`);
* planning returns a :class:`Decision` per pair: :class:`Reconciled` (a plan, field by field) or
  :class:`Settled` (nothing to reconcile; why the link ends, if it does); linking and automatic
  creation return the decisions of the pairs they make, each carrying its :class:`Linked`;
* the writes phase takes the decisions and returns what it could not write (:class:`Unwritten`),
  which with the decisions gives the links and shadows the worker stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.errors import TransientError
from shared.notices import FieldValue, Notice
from shared.ports import Link, Shadow
from shared.reconcile import Plan
from shared.shadow import mark_seen
from shared.sync.journal import Journal

Row = dict[str, Any]


@dataclass
class Pair:
    """One linked person as observed: its notices, its link and both sides as read, with its
    shadow. Set while the batch is grouped and loaded, and no later: notices join through
    ``Batch.attach``, the link changes through :meth:`relink`, the sides and the shadow of a
    pair are set by the phase that brings it into the batch (``grouping``, ``loading``); a pair
    a later phase links is made whole (``Batch.add``)."""

    link: Link
    notices: list[Notice] = field(default_factory=list)
    marketo: Row | None = None
    dynamics: Row | None = None
    shadow: Shadow | None = None
    # When Marketo's side, as decided on, was true: the read's time, or the newest change the
    # notices carried (``carried``); kept in the shadow as its view of Marketo.
    marketo_seen: datetime | None = None

    @property
    def marketo_id(self) -> int:
        return self.link.marketo_id

    @property
    def entity(self) -> str:
        return self.link.entity

    @property
    def dynamics_id(self) -> str:
        return self.link.dynamics_id

    def relink(self, entity: str, record_id: str) -> Linked:
        """The person follows another record (a qualification, a merge): the one change of a
        pair's link, and a first link."""
        self.link = Link(self.marketo_id, entity, record_id)
        return Linked(first_link=True)

    def shadow_to_store(self, decision: Decision, unwritten: Unwritten) -> Shadow | None:
        """The shadow after this batch: settled fields, and written ones whose write succeeded
        (a side in ``unwritten`` keeps its old values); a record created in this batch starts
        from the values it was created with."""
        if isinstance(decision, Reconciled):
            values = decision.plan.shadow_after(
                wrote_marketo=self.marketo_id not in unwritten.marketo,
                wrote_dynamics=self.marketo_id not in unwritten.dynamics,
                dropped=decision.dropped,
            )
        elif decision.linked is not None and decision.linked.created is not None:
            values = dict(decision.linked.created)
        else:
            return None
        if self.marketo_seen is not None:
            mark_seen(values, self.marketo_seen)
        etag = self.shadow.etag if self.shadow is not None else ""
        return Shadow(self.marketo_id, values, etag)


@dataclass(frozen=True)
class Linked:
    """How a pair came to be linked in this batch: its link is stored once the writes are done."""

    # Linked for the first time, or relinked to another record: the first-link rule decides,
    # whatever shadow the person has from before.
    first_link: bool = True
    # The record this batch created for the person, and the values it was created with (they
    # become the shadow).
    created: Mapping[str, FieldValue] | None = None


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What was decided for one pair before anything is written: what to write on each side,
    and ``linked`` when the pair was linked in this batch."""

    marketo_changes: Mapping[str, Any] = field(default_factory=dict)
    dynamics_changes: Mapping[str, Any] = field(default_factory=dict)
    linked: Linked | None = None


@dataclass(frozen=True, kw_only=True)
class Reconciled(Decision):
    """Both sides decided field by field (``plan``)."""

    plan: Plan
    # Mapped fields (Marketo names) whose value was left out of a write (reported): their
    # shadow entry stays as it was.
    dropped: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Settled(Decision):
    """Nothing to reconcile: created in this batch, deleted on one side, merged away, excluded
    by the sync filter, or held for later; ``unlink`` says why the link ends once the writes
    are done."""

    unlink: str | None = None


def unlink_reason(decision: Decision | None) -> str | None:
    """Why the pair's link ends in this batch (None: it does not)."""
    return decision.unlink if isinstance(decision, Settled) else None


@dataclass(frozen=True)
class Trial:
    """A plan loading made on trial, and the journal it recorded into (its reports held back
    until planning adopts them: ``Journal.trial``)."""

    decision: Decision
    journal: Journal


@dataclass(frozen=True)
class Loaded:
    """What loading hands on: the Marketo persons read (unlinked ones included when automatic
    creation is on), the pairs a qualification or merge linked, and the pairs it settled.
    ``planned``: the pairs whose Marketo side their notices carried, with the plan loading made
    of them on trial (the same inputs planning has, so planning keeps it, and what it reported,
    instead of deciding them again)."""

    people: Mapping[int, Row]
    linked: Mapping[int, Linked]
    settled: Mapping[int, Settled]
    planned: Mapping[int, Trial] = field(default_factory=dict)


@dataclass(frozen=True)
class Unwritten:
    """What the writes phase returns: the persons (Marketo ids) whose write to Marketo, or to
    Dynamics, did not happen (refused, or to try again). Their shadows keep that side's old
    values, and no confirmation is asked for a Marketo write that did not happen."""

    marketo: frozenset[int] = frozenset()
    dynamics: frozenset[int] = frozenset()


@dataclass
class Orphan:
    """A Dynamics lead or contact that no person is linked to."""

    entity: str
    record_id: str
    notices: list[Notice] = field(default_factory=list)
    row: Row | None = None

    @property
    def who(self) -> Link:
        """For the sync log: no Marketo id yet."""
        return Link(0, self.entity, self.record_id)


@dataclass
class Batch:
    notices: list[Notice]
    pairs: dict[int, Pair] = field(default_factory=dict)
    orphans: dict[tuple[str, str], Orphan] = field(default_factory=dict)
    unlinked_persons: dict[int, list[Notice]] = field(default_factory=dict)
    retry: dict[str, tuple[Notice, TransientError, Link | None]] = field(default_factory=dict)
    give_up: dict[str, tuple[Notice, str, Link | None]] = field(default_factory=dict)
    # Shadows of echoes set aside whose writes they confirmed (stored if still unchanged).
    confirmed: list[Shadow] = field(default_factory=list)
    # Links that end in this batch because their record moved to another person (merges):
    # removed, with their shadows, before the new links are stored.
    dropped_links: list[Link] = field(default_factory=list)
    # Persons (Marketo ids) whose notices come back later: their link is not dropped now.
    deferred: set[int] = field(default_factory=set)

    def attach(self, link: Link, notices: Iterable[Notice] = ()) -> Pair:
        """The pair of ``link.marketo_id``, created if new. A pair already relinked to a contact
        keeps it: a lead notice in the same batch names the link the person had before."""
        pair = self.pairs.get(link.marketo_id)
        if pair is None:
            pair = self.pairs[link.marketo_id] = Pair(link)
        pair.notices.extend(notices)
        return pair

    def add(self, pair: Pair) -> Pair:
        """A pair linked or created after loading, whole; the notices of a pair already there
        for its person join it."""
        earlier = self.pairs.get(pair.marketo_id)
        if earlier is not None:
            pair = replace(pair, notices=[*earlier.notices, *pair.notices])
        self.pairs[pair.marketo_id] = pair
        return pair

    def linked_records(self) -> set[tuple[str, str]]:
        return {(p.entity, p.dynamics_id.lower()) for p in self.pairs.values()}

    def defer(self, notices: Iterable[Notice], exc: TransientError, who: Link | None = None) -> None:
        for notice in notices:
            self.retry[notice.dedup_id] = (notice, exc, who)

    def defer_pair(self, pair: Pair, exc: TransientError) -> None:
        """A transient fault for this person: its notices come back later, its link stays."""
        self.deferred.add(pair.marketo_id)
        self.defer(pair.notices, exc, pair.link)

    def park(self, notices: Iterable[Notice], reason: str, who: Link | None = None) -> None:
        for notice in notices:
            self.give_up[notice.dedup_id] = (notice, reason, who)

    @property
    def persons(self) -> int:
        return len(self.pairs) + len(self.orphans) + len(self.unlinked_persons)
