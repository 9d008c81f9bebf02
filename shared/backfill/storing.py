"""The last phase: store what was linked, and hand the rest to the live sync.

Per range of pairs: the new links (unless the live sync linked one side otherwise meanwhile:
then the pair is reported and left to it), then the shadows of the pairs whose writes all
succeeded (a new pair's only if no shadow appeared meanwhile; a linked pair's over the etag it
was read with). A pair with a failed write keeps its link and gets no shadow: its next change
is a first link again, and the failure was reported on the person. Held records (changed by
someone else during the job) and handed-over ones (a qualified or merged record, a side that is
gone) get a notice on the live sync's queue, which reconciles them with fresh values.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from shared.backfill.context import DONE, MORE, Context, Outcome
from shared.backfill.job import JobState
from shared.backfill.pairs import report
from shared.backfill.staging import FAILED, HANDOVER, PAIRS, ranges, record_key
from shared.backfill.writing import held_records
from shared.errors import ConflictError
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Link, Shadow
from shared.sync.journal import Journal


def start_store(ctx: Context, job: JobState) -> None:
    width = ctx.width(job.counts.get("pairs", 0) + job.counts.get("persons_created", 0), 5_000)
    job.cursor.update(width=width, at=0)
    job.progress[job.phase].total = len(ranges(width))


def store(ctx: Context, job: JobState) -> Outcome:
    walk = ranges(job.cursor["width"])
    if job.cursor["at"] >= len(walk):
        return DONE
    first, last = walk[job.cursor["at"]]
    pairs = [item.value for item in ctx.staging.scan(PAIRS, first, last)]
    failed = {item.key for item in ctx.staging.scan(FAILED, first, last)}
    held = held_records(ctx)
    journal = Journal(0)
    linked = _store_links(ctx, job, [p for p in pairs if p["new"]], journal)
    kept = [p for p in pairs if not p["new"] or p["m"] in linked]
    settled = [
        p
        for p in kept
        if f"mw:{p['m']}" not in failed
        and f"dw:{p['m']}" not in failed
        and record_key(p["e"], p["d"]) not in held
        and p["sh"] is not None
    ]
    _store_shadows(ctx, job, settled)
    notices = [_record_notice(p["e"], p["d"], job) for p in kept if record_key(p["e"], p["d"]) in held]
    for item in ctx.staging.scan(HANDOVER, first, last):
        value = item.value
        notices.append(
            _person_notice(int(value["m"]), job)
            if "m" in value
            else _record_notice(value["e"], value["d"], job)
        )
    if notices and ctx.queue is not None:
        ctx.queue.send(notices)
    job.count("notices_to_live_sync", len(notices))
    report(ctx, journal)
    job.cursor["at"] += 1
    job.advance(1)
    return MORE if job.cursor["at"] < len(walk) else DONE


def _store_links(ctx: Context, job: JobState, new: list[dict[str, Any]], journal: Journal) -> set[int]:
    """Store the new pairs' links; the Marketo ids linked (already or now)."""
    if not new:
        return set()
    by_person = ctx.state.get_links_by_marketo(p["m"] for p in new)
    by_record = {
        entity: ctx.state.get_links_by_dynamics(entity, [p["d"] for p in new if p["e"] == entity])
        for entity in ("lead", "contact")
    }
    linked: set[int] = set()
    wanted: list[Link] = []
    for pair in new:
        link = Link(pair["m"], pair["e"], pair["d"])
        person = by_person.get(link.marketo_id)
        record = by_record[link.entity].get(link.dynamics_id)
        same = (
            person is not None
            and person.entity == link.entity
            and person.dynamics_id.lower() == link.dynamics_id
        )
        if same:
            linked.add(link.marketo_id)  # stored already (a run before a kill, or the live sync)
        elif person is not None or (record is not None and record.marketo_id != link.marketo_id):
            why = "the live sync linked one of them otherwise meanwhile; left to it"
            journal.note(link, "skipped", f"backfill: not linked: {why}")
            job.count("links_taken_meanwhile")
        else:
            wanted.append(link)
    refused = ctx.state.put_links(wanted)
    for marketo_id, exc in refused.items():
        journal.note(Link(marketo_id, "-", ""), "skipped", f"backfill: not linked: {exc.message}")
    stored = [link for link in wanted if link.marketo_id not in refused]
    for link in stored:
        linked.add(link.marketo_id)
    job.count("links_stored", len(stored))
    job.count("links_taken_meanwhile", len(refused))
    return linked


def _store_shadows(ctx: Context, job: JobState, pairs: list[dict[str, Any]]) -> None:
    new = [p["m"] for p in pairs if p["new"]]
    existing = ctx.state.get_shadows(new) if new else {}
    shadows = [Shadow(p["m"], p["sh"], p["et"]) for p in pairs if not (p["new"] and p["m"] in existing)]
    # A stale one: the live sync moved it meanwhile, its view is newer (the others are written).
    with suppress(ConflictError):
        ctx.state.put_shadows(shadows)
    job.count("shadows_stored", len(shadows))


def _record_notice(entity: str, dynamics_id: str, job: JobState) -> Notice:
    return Notice(
        source=Source.OPERATOR,
        entity=Entity(entity),
        record_id=dynamics_id,
        kind=Kind.UPDATED,
        version=f"backfill-{job.id}",
        occurred_at=datetime.now(UTC),
        actor="mdsync-backfill",
    )


def _person_notice(marketo_id: int, job: JobState) -> Notice:
    return Notice(
        source=Source.OPERATOR,
        entity=Entity.PERSON,
        record_id=str(marketo_id),
        kind=Kind.UPDATED,
        version=f"backfill-{job.id}",
        occurred_at=datetime.now(UTC),
        actor="mdsync-backfill",
    )
