"""Marketo's side of a pair from what its notices carry, instead of a read, where that is safe.

A Marketo change reaches the worker with its new values: the poller's notice carries each
Change Data Value's new value, the change campaign's notice the person's mapped values. When a
pair's notices are only such changes, Marketo's side is the shadow (what both sides held at the
last sync) with the reported values laid over it, and the Marketo read (one call per 300
persons) is not needed. It is safe only when nothing else can be true of Marketo, so the worker
reads as before unless **all** of these hold:

* every notice of the pair is a Marketo ``updated`` notice of someone else's change (not an
  echo of mdsync's own write, not trimmed, no ``confirm``), and the pair is linked and synced
  before (a shadow, no first link);
* no field has a write that Marketo has not yet confirmed (only Marketo knows whether it took it);
* every reported field is of a type whose activity text and REST value read the same (text,
  email, phone, numbers, booleans), or reports the value the shadow holds (a campaign reports
  every mapped field, changed or not): a changed date, option or money value is read; and
  notices that report the same field agree on its value (two changes of one field in a batch:
  which came last is read);
* every notice is **newer than the shadow's view of Marketo** by ``SKEW`` (the ``@seen``
  watermark: when the worker last read Marketo for the person, or the newest change it took
  from notices). An older notice may report a value a later change already replaced; the read
  then tells. ``SKEW`` covers the clocks (Marketo's activity dates, this host's receipt time of a
  campaign call) and a campaign call's time in flight;
* the plan made from these values writes **nothing to Marketo** and meets no collision: a value
  the worker would send to Marketo, or a field changed on both sides, must be decided on what
  Marketo holds now. The trial plan is thrown away; the pair is then read like any other.

What the notices do not report is taken as unchanged: a later change has its own notice, and is
synced when it comes. The Marketo link fields are taken as they should be (the next read of the
person mends one a user changed). What this costs in calls: docs/performance.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared import shadow as memory_of
from shared.mapping import EntityMapping, FieldMapping, FieldType, Side
from shared.normalize import Known, canonical, same
from shared.notices import FieldValue, Kind, Notice, Source
from shared.sync.batch import Decision, Pair, Reconciled, Row
from shared.sync.planning import link_fields

SKEW = timedelta(seconds=60)
TRUSTED_TYPES = frozenset(
    {
        FieldType.STRING,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.INTEGER,
        FieldType.NUMBER,
        FieldType.BOOLEAN,
    }
)


def _carried_changes(pair: Pair, entity: EntityMapping) -> dict[str, FieldValue] | None:
    """The reported values by Marketo name, or None when the notices cannot stand for a read."""
    assert pair.shadow is not None
    seen = memory_of.seen_at(pair.shadow.values)
    if seen is None:
        return None
    carried: dict[str, FieldValue] = {}
    for notice in pair.notices:
        if not _usable(notice) or notice.occurred_at.astimezone(UTC) <= seen + SKEW:
            return None
        for name, change in notice.changes.items():
            fmap = entity.by_marketo(name)
            if fmap is None:
                continue  # mapped for the other entity only
            if fmap.type not in TRUSTED_TYPES:
                # A campaign reports every field: one it did not change is no reason to read.
                memory = memory_of.recall(pair.shadow.values, name)
                held = memory.marketo if memory is not None else None
                if memory is None or not same(fmap, canonical(fmap, change.new, Side.MARKETO), held):
                    return None
                continue
            if name in carried and carried[name] != change.new:
                return None
            carried[name] = change.new
    return carried


def _usable(notice: Notice) -> bool:
    return (
        notice.source is Source.MARKETO
        and notice.kind is Kind.UPDATED
        and not notice.own_write
        and not notice.trimmed
        and bool(notice.changes)
    )


def carried_person(pair: Pair, mapping: FieldMapping, entity: EntityMapping) -> Row | None:
    """Marketo's side of ``pair`` from its notices and shadow, or None when it must be read. For
    a pair linked before this batch and not settled (the loader asks for no other)."""
    if pair.shadow is None or pair.dynamics is None:
        return None
    values = pair.shadow.values
    if memory_of.pending_fields(values):
        return None
    carried = _carried_changes(pair, entity)
    if carried is None:
        return None
    person: Row = {"id": pair.marketo_id}
    for fmap in entity.fields:
        memory = memory_of.recall(values, fmap.marketo)
        if memory is None:
            return None  # a field the shadow never saw (the mapping grew): read it
        person[fmap.marketo] = Known(memory.marketo)
    person.update(carried)
    # The link fields as they should be, so that none is rewritten on this guess.
    person.update(link_fields(mapping, pair.link, {}))
    return person


def newest(pair: Pair) -> datetime:
    return max(n.occurred_at.astimezone(UTC) for n in pair.notices)


def writes_only_to_dynamics(trial: Decision) -> bool:
    """The trial plan sends nothing to Marketo and decided no collision."""
    if not isinstance(trial, Reconciled) or trial.marketo_changes:
        return False
    plan = trial.plan
    return not plan.towards(Side.MARKETO) and not plan.collisions and not plan.refusals
