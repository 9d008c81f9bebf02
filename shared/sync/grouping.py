"""Which person each notice is about: links from the state store, echoes set aside.

Notices are grouped by person, not by record: a Marketo notice and a Dynamics notice about the
two sides of one link land in the same pair, and however many notices a person has in the batch
(duplicates, late ones, out of order), the person is reconciled once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared import shadow as memory_of
from shared.mapping import EntityMapping, FieldMapping, Side
from shared.normalize import canonical, same
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Link, Shadow, StateStore
from shared.sync.batch import Batch, Orphan
from shared.sync.journal import Journal


def _marketo_id(notice: Notice) -> int | None:
    return int(notice.record_id) if notice.record_id.isdigit() else None


def group(notices: Sequence[Notice], state: StateStore, journal: Journal) -> Batch:
    """Sort the notices into pairs, orphans and unlinked persons; load the pairs' shadows."""
    batch = Batch(list(notices))
    persons = {m for n in notices if n.entity is Entity.PERSON and (m := _marketo_id(n)) is not None}
    # A merged-away person's notice may come back (a retry) after its record moved to the winner.
    persons |= {int(w) for n in notices if n.kind is Kind.MERGED and (w := n.merged_into or "").isdigit()}
    records = {
        entity: {n.record_id.lower() for n in notices if n.entity.value == entity}
        for entity in ("lead", "contact")
    }
    # The Marketo id a Dynamics notice saw in the record's link column lets the store find the
    # link by person; the link found is the same (see StateStore.get_links_by_dynamics).
    hints = {(n.entity.value, n.record_id.lower()): n.linked_to for n in notices if n.linked_to is not None}
    by_person = state.get_links_by_marketo(persons)
    by_record = {
        entity: state.get_links_by_dynamics(
            entity, ids, hints={i: hints[entity, i] for i in ids if (entity, i) in hints}
        )
        for entity, ids in records.items()
    }
    for notice in notices:
        if notice.entity is Entity.PERSON:
            _place_person(batch, notice, by_person, journal)
            continue
        record_id = notice.record_id.lower()
        link = by_record[notice.entity.value].get(record_id)
        if link is not None:
            batch.attach(link, [notice])
        else:
            key = (notice.entity.value, record_id)
            batch.orphans.setdefault(key, Orphan(*key)).notices.append(notice)
    shadows = state.get_shadows(batch.pairs)
    for marketo_id, pair in batch.pairs.items():
        pair.shadow = shadows.get(marketo_id)
    return batch


def _place_person(batch: Batch, notice: Notice, links: dict[int, Link], journal: Journal) -> None:
    marketo_id = _marketo_id(notice)
    if marketo_id is None:
        journal.note(Link(0, "-", ""), "skipped", f"notice {notice.dedup_id}: not a Marketo person id")
        return
    link = links.get(marketo_id)
    if link is None and notice.kind is Kind.MERGED and (notice.merged_into or "").isdigit():
        link = links.get(int(notice.merged_into or 0))  # its record follows the winner already
    if link is not None:
        batch.attach(link, [notice])
    elif notice.kind is not Kind.CONFIRM:  # a confirmation for a link since dropped: nothing to do
        batch.unlinked_persons.setdefault(marketo_id, []).append(notice)


EntityOf = Callable[[str], EntityMapping]


def drop_echoes(batch: Batch, mapping: FieldMapping, entity_of: EntityOf, journal: Journal) -> None:
    """Our own writes come back as notices, and a Marketo change can be reported twice (by the
    poller and by the change campaign). When every notice of a pair reports only values the
    shadow already holds, there is nothing to read. Correctness does not depend on this: without
    the skip, the reconcile would find nothing to write either.

    A Marketo echo also confirms the writes it reports (their shadow entries stop being
    unconfirmed, ``batch.confirmed``); one that leaves an unconfirmed write unreported is no
    echo: Marketo may not have taken that value, and the reconcile looks. mdsync's own
    ``confirm`` notice is set aside the same way once every write it asks about is confirmed."""
    for marketo_id, pair in list(batch.pairs.items()):
        shadow = pair.shadow
        if shadow is None or not pair.notices:
            continue
        entity = entity_of(pair.link.entity)
        link_column = mapping.links.dynamics_marketo_id
        notices = [n for n in pair.notices if n.kind is not Kind.CONFIRM]
        if not all(is_echo(n, pair.link, shadow, entity, link_column) for n in notices):
            continue
        reported = {name for n in notices if n.source is Source.MARKETO for name in n.changes}
        pending = memory_of.pending_fields(shadow.values)
        asked = len(notices) < len(pair.notices)
        if (asked or any(n.source is Source.MARKETO for n in notices)) and not pending <= reported:
            continue
        del batch.pairs[marketo_id]
        journal.result.skipped_echoes += len(pair.notices)
        confirmed = pending & reported
        if confirmed:
            values = dict(shadow.values)
            for name in confirmed:
                memory_of.confirm(values, name)
            batch.confirmed.append(Shadow(marketo_id, values, shadow.etag))


def is_echo(notice: Notice, link: Link, shadow: Shadow, entity: EntityMapping, link_column: str) -> bool:
    """A notice whose every reported value is already in the shadow: nothing to read.

    Our own update (the Marketo id we wrote into the link column counts as known); for a Marketo
    notice, a field mdsync wrote and has not seen confirmed must also report the old value mdsync
    read: any other old value means the field changed between mdsync's read and its write.

    Or a change campaign's call for a change already synced (the poller brought it first): a
    campaign reports every mapped field as Marketo held it when the campaign ran, so values all
    equal to the shadow's say Marketo was in sync then, and a later change runs the campaign
    again. A field whose write is unconfirmed is never taken as synced this way. (A poller's
    notice of someone else's change is always reconciled: it reports only the fields that
    changed, and a later change of another field may have had its notice lost.)"""
    if notice.source is Source.OPERATOR or notice.trimmed:
        return False
    if notice.kind is not Kind.UPDATED or not notice.changes:
        return False
    side = Side.MARKETO if notice.source is Source.MARKETO else Side.DYNAMICS
    if not notice.own_write and not (notice.snapshot and side is Side.MARKETO):
        return False
    for name, change in notice.changes.items():
        if side is Side.DYNAMICS and name == link_column:
            if str(change.new or "") != str(link.marketo_id):
                return False
            continue
        fmap = entity.by_marketo(name) if side is Side.MARKETO else entity.by_dynamics(name)
        if fmap is None and notice.snapshot:
            continue  # a campaign reports the fields of both entities' mappings
        memory = memory_of.recall(shadow.values, fmap.marketo) if fmap is not None else None
        if fmap is None or memory is None:
            return False
        if memory.pending and not notice.own_write:
            return False
        held = memory.marketo if side is Side.MARKETO else memory.value
        if not same(fmap, canonical(fmap, change.new, side), held):
            return False
        old = canonical(fmap, change.old, side)
        if side is Side.MARKETO and memory.pending and not same(fmap, old, memory.before):
            return False
    return True
