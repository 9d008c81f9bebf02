"""Linked pairs that exist before a workload starts, as after an initial sync.

Both simulators are seeded through their admin APIs (no activities, no webhooks) with the same
values, and the state store gets the links and shadows the worker would have written. A few
pairs are then reconciled on the spot to prove the seed is really in sync: a seed that was not
would make every workload pay for writes nobody asked for.

The seeded state then lives for the whole run in the bench's process, beside the sync it
measures: :func:`freeze_seeded` keeps the garbage collector from walking it again and again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mdsync.harness import LocalSystem
from shared.mapping import Side
from shared.ports import Link, Shadow
from shared.reconcile import Action, initial_values, reconcile
from shared.shadow import mark_seen

CHUNK = 1_000
# Links go to the store in larger chunks: the Table store writes first links as a transaction
# per partition, and a record's partition holds 1/256 of them (about 100 each at this size).
LINK_CHUNK = 25_600

SYNCED_BEFORE = timedelta(hours=1)
# Young-generation collections between two full ones, after freeze_seeded (Python's default: 10).
FULL_COLLECTION_EVERY = 100


@dataclass(frozen=True)
class Pair:
    marketo_id: int
    entity: str  # "lead" or "contact"
    dynamics_id: str


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _person(tag: str, i: int, entity: str) -> dict[str, Any]:
    person: dict[str, Any] = {
        "email": f"{tag}{i}@bench.example",
        "firstName": f"First{i}",
        "lastName": f"Last{i}",
        "title": "seeded",
        "city": "Lisbon",
        "country": "Portugal",
        "msftDoNotEmail": False,
        "msftType": "Lead" if entity == "lead" else "Contact",
    }
    if entity == "lead":
        person["company"] = f"Company {i % 97}"
    return person


def _row(person: dict[str, Any], marketo_id: int, entity: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "firstname": person["firstName"],
        "lastname": person["lastName"],
        "emailaddress1": person["email"],
        "jobtitle": person["title"],
        "address1_city": person["city"],
        "address1_country": person["country"],
        "donotemail": False,
        "mdsync_marketoid": str(marketo_id),
    }
    if entity == "lead":
        row["companyname"] = person["company"]
        row["subject"] = "bench"
    return row


def seed_pairs(system: LocalSystem, entity: str, count: int, *, tag: str) -> list[Pair]:
    """``count`` linked, in-sync pairs of ``entity`` (``tag`` keeps emails unique per call)."""
    if count == 0:
        return []
    persons = [_person(tag, i, entity) for i in range(count)]
    marketo_ids: list[int] = []
    for chunk in _chunks(persons):
        marketo_ids.extend(system.marketo_admin.seed_persons(list(chunk)))
    rows = [_row(p, mid, entity) for p, mid in zip(persons, marketo_ids, strict=True)]
    dynamics_ids: list[str] = []
    for chunk in _chunks(rows):
        dynamics_ids.extend(system.dataverse_admin.seed(entity, list(chunk)))
    pairs = [Pair(m, entity, d) for m, d in zip(marketo_ids, dynamics_ids, strict=True)]
    _link_in_marketo(system, pairs)
    _store_state(system, pairs)
    _prove_in_sync(system, pairs[:5])
    return pairs


def freeze_seeded() -> None:
    """Keep what exists now (the seeded simulators, the system) out of the garbage collector's
    full collections, and make those ten times rarer.

    The simulators run in the bench's process: Marketo's persons and activity log and
    Dataverse's rows, hundreds of thousands of objects that the sync's own processes never hold
    in Azure. Each full collection walks every one of them, paid by whichever thread allocates
    (the worker, mostly): in a Marketo -> Dynamics burst of 20,000 changes that was a quarter of
    the process's CPU. Frozen, they are never walked (nor freed: they live until the run ends
    anyway); the rarer full collections only free cyclic garbage later. Nothing the bench
    measures depends on when that is freed."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def _link_in_marketo(system: LocalSystem, pairs: Sequence[Pair]) -> None:
    """The Marketo side of the link (msftLeadId/msftContactId), as a sync would have set it."""
    links = system.deps.mapping.links
    state = system.stack.marketo.state
    with state.lock:
        for pair in pairs:
            person = state.persons.get(pair.marketo_id)
            assert person is not None
            field = links.marketo_lead_id if pair.entity == "lead" else links.marketo_contact_id
            person[field] = pair.dynamics_id


def _store_state(system: LocalSystem, pairs: Sequence[Pair]) -> None:
    state = system.deps.state
    mapping = system.deps.mapping.entity(pairs[0].entity)
    marketo = system.stack.marketo.state
    shadows = []
    for chunk in _chunks(pairs, LINK_CHUNK):
        refused = state.put_links([Link(p.marketo_id, p.entity, p.dynamics_id) for p in chunk])
        if refused:
            raise RuntimeError(f"seeded links refused: {sorted(refused)[:5]}")
    for pair in pairs:
        with marketo.lock:
            person = dict(marketo.persons.get(pair.marketo_id) or {})
        values = initial_values(mapping, person, Side.MARKETO)
        # As a sync an hour before left them: a burst is a mass update of persons synced earlier.
        mark_seen(values, datetime.now(UTC) - SYNCED_BEFORE)
        shadows.append(Shadow(pair.marketo_id, values))
    for chunk in _chunks(shadows):
        state.put_shadows(list(chunk))


def _prove_in_sync(system: LocalSystem, pairs: Sequence[Pair]) -> None:
    mapping = system.deps.mapping
    shadows = system.deps.state.get_shadows(p.marketo_id for p in pairs)
    for pair in pairs:
        with system.stack.marketo.state.lock:
            person = dict(system.stack.marketo.state.persons.get(pair.marketo_id) or {})
        row = system.dataverse_admin.row(pair.entity, pair.dynamics_id) or {}
        plan = reconcile(mapping.entity(pair.entity), person, row, shadows[pair.marketo_id].values)
        pending = [d.field.marketo for d in plan.decisions if d.action is not Action.IN_SYNC]
        if pending:
            raise RuntimeError(f"seeded pair {pair} is not in sync: {pending}")
