"""The batching peer: a plain batching integration on the same clients, limits and simulators.

What a careful integrator writes without mdsync's design, the baseline worth beating (the naive
one-call-per-person baseline is a straw man). It batches every call as the APIs allow and makes
them one at a time, keeping nothing but the links and its paging token:

* Dynamics -> Marketo: given the changed Dynamics ids (as the naive baseline is: webhooks or a
  change query would tell it), read the rows from Dataverse (250 ids a query), write Marketo
  with Sync Leads (300 persons a call, by id), and read one page of the activity feed per 300
  written. Those pages hold the activities of its own writes, its echoes: Get Lead Changes
  cannot leave out who made a change, so a two-way integration pages through them to reach
  Marketo's own changes. 2/300 Marketo calls per change.
* Marketo -> Dynamics: page Get Lead Changes (300 activities a page), take the new values from
  the activities, and write Dataverse with UpdateMultiple, up to 1,000 rows a request. 1/300.

What it gives up for the Marketo read mdsync makes before writing (3/300 from Dynamics): a field
edited in Marketo since the peer's last poll, one Marketo should win, is overwritten with the
Dynamics value; with no shadow it cannot tell a collision from a change, nor an echo of its own
write from a user's edit of the same value; and it writes every mapped value of a changed row,
changed or not. Its rate is measured on the same timeline as the bursts (timeline.py).

The Dataverse webhooks are dropped while it runs, so mdsync's own sync stays out of its way and
out of its call counts; the bench runs it last on a system, where the activities of its writes,
which mdsync's poller would read next, no longer matter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mdsync.bench.edits import edit_in_dynamics, edit_in_marketo
from mdsync.bench.meter import Meter
from mdsync.bench.seed import Pair
from mdsync.bench.stats import latency_summary
from mdsync.bench.timeline import Timeline
from mdsync.bench.watch import Target, Watcher
from mdsync.bench.workloads import LAND_TIMEOUT, TITLE, WorkloadResult, timeline_json
from mdsync.harness import LocalSystem
from shared.dataverse.odata import ENTITY_SETS, in_
from shared.mapping import Side
from shared.normalize import canonical, to_dynamics, to_marketo
from shared.sync.reads import IDS_PER_QUERY

MARKETO_BATCH = 300
DATAVERSE_WRITE_BATCH = 1_000
# Enough to drop every webhook the edits and the peer's own writes fire (one per row and step).
DROPPED = 10_000_000


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BatchingPeer:
    def __init__(self, system: LocalSystem) -> None:
        self.marketo = system.deps.marketo
        self.dataverse = system.deps.dataverse
        self.mapping = system.deps.mapping
        self.fields = sorted({f.marketo for e in (self.mapping.lead, self.mapping.contact) for f in e.fields})

    def to_marketo(self, entity: str, dynamics_ids: Sequence[str], token: str, links: dict[str, int]) -> None:
        """Rows ``dynamics_ids`` of ``entity`` changed; ``token``: its place in the activity
        feed; ``links``: Dynamics id -> Marketo id."""
        mapping = self.mapping.entity(entity)
        columns = [f"{entity}id", *(f.dynamics for f in mapping.fields)]
        for chunk in _chunks(dynamics_ids, MARKETO_BATCH):
            rows: list[dict[str, Any]] = []
            for ids in _chunks(chunk, IDS_PER_QUERY):
                rows += self.dataverse.query(
                    ENTITY_SETS[entity], select=columns, filter=in_(f"{entity}id", ids)
                )
            persons: list[dict[str, Any]] = []
            for row in rows:
                person: dict[str, Any] = {"id": links[str(row[f"{entity}id"]).lower()]}
                for fmap in mapping.fields:
                    if fmap.direction.to_marketo:
                        value = canonical(fmap, row.get(fmap.dynamics), Side.DYNAMICS)
                        person[fmap.marketo] = to_marketo(fmap, value)
                persons.append(person)
            self.marketo.push_leads(persons, action="updateOnly", lookup_field="id")
            page = self.marketo.get_lead_changes(token, self.fields)  # its echoes
            token = page.next_page_token or token

    def to_dynamics(self, entity: str, token: str, links: dict[int, str]) -> None:
        """Marketo's changes since ``token`` to the linked rows of ``entity`` (``links``: Marketo
        id -> Dynamics id); others are not its business here."""
        mapping = self.mapping.entity(entity)
        by_name = {f.marketo: f for f in mapping.fields if f.direction.to_dynamics}
        pending: dict[str, dict[str, Any]] = {}
        more = True
        while more:
            page = self.marketo.get_lead_changes(token, self.fields, batch_size=MARKETO_BATCH)
            token, more = page.next_page_token or token, page.more_result
            for activity in page.activities:
                row_id = links.get(activity.lead_id)
                if row_id is None:
                    continue
                row = pending.setdefault(row_id, {f"{entity}id": row_id})
                for change in activity.fields:
                    fmap = by_name.get(str(change.get("name")))
                    if fmap is not None:
                        value = canonical(fmap, change.get("newValue"), Side.MARKETO)
                        row[fmap.dynamics] = to_dynamics(fmap, value)
            if len(pending) >= DATAVERSE_WRITE_BATCH or not more:
                self._write(entity, list(pending.values()))
                pending.clear()

    def _write(self, entity: str, rows: list[dict[str, Any]]) -> None:
        for result in self.dataverse.update_rows(ENTITY_SETS[entity], entity, rows):
            if result.error is not None:
                raise result.error


class _WebhooksDropped:
    """Dataverse's webhooks dropped for the block: mdsync's own sync sees none of it."""

    def __init__(self, system: LocalSystem) -> None:
        self.admin = system.dataverse_admin

    def __enter__(self) -> None:
        self.admin.drop_webhooks(DROPPED)

    def __exit__(self, *exc: object) -> None:
        self.admin.wait_for_webhooks(timeout=LAND_TIMEOUT)
        self.admin.clear_faults()


def peer_to_marketo(system: LocalSystem, pairs: Sequence[Pair], tag: str) -> WorkloadResult:
    """Every pair's lead edited in Dynamics, then the peer syncs the changed ids; the clock runs
    from its start until Marketo holds every value."""
    column, field_name = TITLE
    peer = BatchingPeer(system)
    links = {p.dynamics_id.lower(): p.marketo_id for p in pairs}
    with _WebhooksDropped(system), Meter(system) as meter, Watcher(system, period=0.1) as watcher:
        token = system.deps.marketo.get_paging_token(datetime.now(UTC) - timedelta(seconds=1))
        edit_in_dynamics(
            system, "lead", [(p.dynamics_id, {column: f"{tag}-{i}"}) for i, p in enumerate(pairs)]
        )
        with Timeline(system) as timeline:
            started = time.monotonic()
            for i, pair in enumerate(pairs):
                watcher.expect(
                    Target("marketo", "person", str(pair.marketo_id), field_name, f"{tag}-{i}"),
                    started,
                    "to_marketo",
                )
            peer.to_marketo("lead", [p.dynamics_id for p in pairs], token, links)
            watcher.wait(LAND_TIMEOUT)
    return _result(
        "peer Dynamics -> Marketo",
        pairs,
        meter,
        watcher,
        timeline=timeline,
        started=started,
        direction="to_marketo",
    )


def peer_to_dynamics(system: LocalSystem, pairs: Sequence[Pair], tag: str) -> WorkloadResult:
    """Every pair's person edited in Marketo, then the peer pages the changes; the clock runs
    from its first page until Dynamics holds every value."""
    column, field_name = TITLE
    peer = BatchingPeer(system)
    links = {p.marketo_id: p.dynamics_id for p in pairs}
    with _WebhooksDropped(system), Meter(system) as meter, Watcher(system, period=0.1) as watcher:
        token = system.deps.marketo.get_paging_token(datetime.now(UTC) - timedelta(seconds=1))
        edit_in_marketo(system, [(p.marketo_id, {field_name: f"{tag}-{i}"}) for i, p in enumerate(pairs)])
        with Timeline(system) as timeline:
            started = time.monotonic()
            for i, pair in enumerate(pairs):
                watcher.expect(
                    Target("dynamics", pair.entity, pair.dynamics_id, column, f"{tag}-{i}"),
                    started,
                    "to_dynamics",
                )
            peer.to_dynamics("lead", token, links)
            watcher.wait(LAND_TIMEOUT)
    return _result(
        "peer Marketo -> Dynamics",
        pairs,
        meter,
        watcher,
        timeline=timeline,
        started=started,
        direction="to_dynamics",
    )


def _result(
    name: str,
    pairs: Sequence[Pair],
    meter: Meter,
    watcher: Watcher,
    *,
    timeline: Timeline,
    started: float,
    direction: str,
) -> WorkloadResult:
    landed = watcher.latencies(direction)
    seconds = (watcher.last_landing() or time.monotonic()) - started
    return WorkloadResult(
        name,
        len(pairs),
        seconds,
        meter.calls,
        len(landed),
        {direction: latency_summary(landed)},
        {"timeline": timeline_json(timeline, started, watcher, direction)},
    )
