"""The naive baseline: the same clients and the same limits, one record per call.

What a first integration usually does: for each changed record, read it from the source, read
its counterpart from the target, compare the mapped fields, and write the differences, one
person per request. Change capture is given the same footing as mdsync's: Dynamics changes are
known (as webhooks would report them), Marketo changes come from the same Get Lead Changes
pages. It has no shadow, so it cannot see collisions; it only copies the side that changed.
It runs in the bench's thread with the Dataverse webhooks held, so the real sync stays out of
its way and out of its call counts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mdsync.bench.edits import edit_in_dynamics, edit_in_marketo
from mdsync.bench.meter import Meter
from mdsync.bench.seed import Pair
from mdsync.bench.workloads import TITLE, WorkloadResult
from mdsync.harness import LocalSystem
from shared.dataverse.client import DataverseClient
from shared.dataverse.odata import ENTITY_SETS
from shared.mapping import EntityMapping, FieldMapping, Side
from shared.marketo.client import MarketoClient
from shared.normalize import canonical, to_dynamics, to_marketo


class NaiveSyncer:
    def __init__(self, marketo: MarketoClient, dataverse: DataverseClient, mapping: FieldMapping) -> None:
        self.marketo = marketo
        self.dataverse = dataverse
        self.mapping = mapping
        self.fields = mapping.marketo_fields()

    def _both(self, pair: Pair) -> tuple[EntityMapping, dict[str, Any], dict[str, Any]]:
        entity = self.mapping.entity(pair.entity)
        columns = [f.dynamics for f in entity.fields]
        row = self.dataverse.get(ENTITY_SETS[pair.entity], pair.dynamics_id, select=columns)
        people = self.marketo.get_leads_by_ids([pair.marketo_id], self.fields)
        return entity, (people[0] if people else {}), row

    def to_marketo(self, pair: Pair) -> None:
        entity, person, row = self._both(pair)
        changes = {}
        for fmap in entity.fields:
            value = canonical(fmap, row.get(fmap.dynamics), Side.DYNAMICS)
            if fmap.direction.to_marketo and value != canonical(fmap, person.get(fmap.marketo), Side.MARKETO):
                changes[fmap.marketo] = to_marketo(fmap, value)
        if changes:
            self.marketo.push_leads(
                [{"id": pair.marketo_id, **changes}], action="updateOnly", lookup_field="id"
            )

    def to_dynamics(self, pair: Pair) -> None:
        entity, person, row = self._both(pair)
        changes = {}
        for fmap in entity.fields:
            value = canonical(fmap, person.get(fmap.marketo), Side.MARKETO)
            if fmap.direction.to_dynamics and value != canonical(fmap, row.get(fmap.dynamics), Side.DYNAMICS):
                changes[fmap.dynamics] = to_dynamics(fmap, value)
        if changes:
            self.dataverse.update(ENTITY_SETS[pair.entity], pair.dynamics_id, changes)

    def changed_in_marketo(self, token: str) -> list[int]:
        """Persons with mapped-field changes since ``token`` (Get Lead Changes, page by page)."""
        fields = sorted({f.marketo for f in (*self.mapping.lead.fields, *self.mapping.contact.fields)})
        ids: dict[int, None] = {}
        while True:
            page = self.marketo.get_lead_changes(token, fields)
            ids.update((a.lead_id, None) for a in page.activities)
            token = page.next_page_token or token
            if not page.more_result:
                return list(ids)


def _landed(system: LocalSystem, pairs: Sequence[Pair], tag: str, side: str) -> int:
    column, field_name = TITLE
    count = 0
    for i, pair in enumerate(pairs):
        if side == "marketo":
            with system.stack.marketo.state.lock:
                value = (system.stack.marketo.state.persons.get(pair.marketo_id) or {}).get(field_name)
        else:
            with system.stack.dataverse.state.store.lock:
                row = system.stack.dataverse.state.store.get(pair.entity, pair.dynamics_id.lower())
                value = (row or {}).get(column)
        count += value == f"{tag}-{i}"
    return count


def naive_to_marketo(system: LocalSystem, pairs: Sequence[Pair], tag: str) -> WorkloadResult:
    deps = system.deps
    syncer = NaiveSyncer(deps.marketo, deps.dataverse, deps.mapping)
    system.dataverse_admin.pause_webhooks(True)
    try:
        with Meter(system) as meter:
            started = time.monotonic()
            edit_in_dynamics(
                system, "lead", [(p.dynamics_id, {TITLE[0]: f"{tag}-{i}"}) for i, p in enumerate(pairs)]
            )
            for pair in pairs:
                syncer.to_marketo(pair)
            seconds = time.monotonic() - started
    finally:
        system.dataverse_admin.pause_webhooks(False)
    landed = _landed(system, pairs, tag, "marketo")
    return WorkloadResult("naive Dynamics -> Marketo", len(pairs), seconds, meter.calls, landed)


def naive_to_dynamics(system: LocalSystem, pairs: Sequence[Pair], tag: str) -> WorkloadResult:
    deps = system.deps
    syncer = NaiveSyncer(deps.marketo, deps.dataverse, deps.mapping)
    by_id = {p.marketo_id: p for p in pairs}
    system.dataverse_admin.pause_webhooks(True)
    try:
        with Meter(system) as meter:
            token = deps.marketo.get_paging_token(datetime.now(UTC) - timedelta(seconds=1))
            started = time.monotonic()
            edit_in_marketo(system, [(p.marketo_id, {TITLE[1]: f"{tag}-{i}"}) for i, p in enumerate(pairs)])
            for marketo_id in syncer.changed_in_marketo(token):
                if marketo_id in by_id:
                    syncer.to_dynamics(by_id[marketo_id])
            seconds = time.monotonic() - started
    finally:
        system.dataverse_admin.pause_webhooks(False)
    landed = _landed(system, pairs, tag, "dynamics")
    return WorkloadResult("naive Marketo -> Dynamics", len(pairs), seconds, meter.calls, landed)
