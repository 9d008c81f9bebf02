"""The working state of one batch: the persons its notices concern and what happens to each.

A batch sorts its notices three ways:

* ``pairs``: linked persons (a Marketo person and its Dynamics lead or contact), keyed by
  Marketo id; every notice about either side of a pair joins that pair;
* ``orphans``: Dynamics leads and contacts no person is linked to (new, or unlinked);
* ``unlinked_persons``: Marketo persons without a link (new in Marketo, or their record is gone).

Transient faults put a pair's notices in ``retry`` (rescheduled with backoff); permanent faults
that are not the person's data put them in ``give_up`` (parked, replayable).

What the phases hand on as values rather than as fields of a pair: the writes phase returns the
persons it could not write (:class:`Unwritten`), which decides the shadows that are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import TransientError
from shared.notices import FieldValue, Notice
from shared.ports import Link, Shadow
from shared.reconcile import Plan

Row = dict[str, Any]


@dataclass
class Pair:
    """One linked person: its notices, both sides as read, and what to write where."""

    link: Link
    notices: list[Notice] = field(default_factory=list)
    marketo: Row | None = None
    dynamics: Row | None = None
    shadow: Shadow | None = None
    plan: Plan | None = None
    marketo_changes: dict[str, Any] = field(default_factory=dict)
    dynamics_changes: dict[str, Any] = field(default_factory=dict)
    # A record this batch created: the values it was created with become the shadow.
    created_values: dict[str, FieldValue] | None = None
    # Mapped fields (Marketo names) whose value was left out of a write (reported): their
    # shadow entry stays as it was.
    dropped: set[str] = field(default_factory=set)
    new_link: bool = False  # store the link (linked, created or relinked in this batch)
    # A pair linked for the first time (or relinked to another record): the first-link rule
    # decides, whatever shadow the person has from before.
    first_link: bool = False
    unlink: str | None = None  # why the link is dropped once the writes are done
    settled: bool = False  # nothing left to decide (created, unlinked or excluded)

    @property
    def marketo_id(self) -> int:
        return self.link.marketo_id

    @property
    def entity(self) -> str:
        return self.link.entity

    @property
    def dynamics_id(self) -> str:
        return self.link.dynamics_id

    def shadow_to_store(self, unwritten: Unwritten) -> Shadow | None:
        """The shadow after this batch: settled fields, and written ones whose write succeeded
        (a side in ``unwritten`` keeps its old values)."""
        if self.plan is not None:
            values = self.plan.shadow_after(
                wrote_marketo=self.marketo_id not in unwritten.marketo,
                wrote_dynamics=self.marketo_id not in unwritten.dynamics,
                dropped=self.dropped,
            )
        elif self.created_values is not None:
            values = dict(self.created_values)
        else:
            return None
        etag = self.shadow.etag if self.shadow is not None else ""
        return Shadow(self.marketo_id, values, etag)


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
