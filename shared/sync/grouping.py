"""Which person each notice is about: links from the state store, echoes set aside.

Notices are grouped by person, not by record: a Marketo notice and a Dynamics notice about the
two sides of one link land in the same pair, and however many notices a person has in the batch
(duplicates, late ones, out of order), the person is reconciled once.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.mapping import FieldMapping, Side
from shared.normalize import canonical
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Link, Shadow, StateStore
from shared.sync.batch import Batch, Orphan
from shared.sync.journal import Journal

_MISSING = object()


def _marketo_id(notice: Notice) -> int | None:
    return int(notice.record_id) if notice.record_id.isdigit() else None


def group(notices: Sequence[Notice], state: StateStore, journal: Journal) -> Batch:
    """Sort the notices into pairs, orphans and unlinked persons; load the pairs' shadows."""
    batch = Batch(list(notices))
    persons = {m for n in notices if n.entity is Entity.PERSON and (m := _marketo_id(n)) is not None}
    records = {
        entity: {n.record_id.lower() for n in notices if n.entity.value == entity}
        for entity in ("lead", "contact")
    }
    by_person = state.get_links_by_marketo(persons)
    by_record = {entity: state.get_links_by_dynamics(entity, ids) for entity, ids in records.items()}
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
    if link is not None:
        batch.attach(link, [notice])
    else:
        batch.unlinked_persons.setdefault(marketo_id, []).append(notice)


def drop_echoes(batch: Batch, mapping: FieldMapping, journal: Journal) -> None:
    """Our own writes come back as notices. When every notice of a pair reports only values the
    shadow already holds, there is nothing to read. Correctness does not depend on this: without
    the skip, the reconcile would find nothing to write either."""
    for marketo_id, pair in list(batch.pairs.items()):
        shadow = pair.shadow
        if (
            shadow is not None
            and pair.notices
            and all(is_echo(n, pair.link, shadow, mapping) for n in pair.notices)
        ):
            del batch.pairs[marketo_id]
            journal.result.skipped_echoes += len(pair.notices)


def is_echo(notice: Notice, link: Link, shadow: Shadow, mapping: FieldMapping) -> bool:
    """A notice of our own update whose every reported value is already in the shadow (the
    Marketo id we wrote into the link column counts as known)."""
    if notice.source is Source.OPERATOR or not notice.own_write or notice.trimmed:
        return False
    if notice.kind is not Kind.UPDATED or not notice.changes:
        return False
    entity = mapping.entity(link.entity)
    side = Side.MARKETO if notice.source is Source.MARKETO else Side.DYNAMICS
    for name, change in notice.changes.items():
        if side is Side.DYNAMICS and name == mapping.links.dynamics_marketo_id:
            if str(change.new or "") != str(link.marketo_id):
                return False
            continue
        fmap = entity.by_marketo(name) if side is Side.MARKETO else entity.by_dynamics(name)
        if fmap is None or canonical(fmap, change.new, side) != shadow.values.get(fmap.marketo, _MISSING):
            return False
    return True
