"""The writing phases: Marketo first (updates, then the persons to create), then Dynamics.

* ``marketo_writes``: the pairs' Marketo changes, a range of pairs at a time, as Bulk Lead Import
  files (update by ``id``) under 10 MB; two ranges at Marketo at once (the import queue takes 2
  at a time and 10 queued, shared). When a range's jobs are Complete, their failure and warning
  files are read back and each row named there is reported on its person (sync log and Activity
  Log) and left without a shadow. A range of fewer than ``SYNC_LEADS_MAX`` rows, and any row that
  must blank a field (an import's empty cell leaves a value as it is), goes through Sync Leads.
* ``creates``: a person per record that has none, imported with the record's id in the link
  field (``msftLeadId``, ``msftContactId``) as the lookup field: imported twice (a kill between
  the submit and the cursor), it finds the person it made and updates it. No duplicate person.
* ``created_ids``: Bulk Import does not say which ids it made, so a Bulk Lead Extract of the
  persons created since the imports began finds them by that link field (the rest by REST);
  each becomes a pair, its Marketo id to store on the record.
* ``dynamics_writes``: each pair's Dynamics changes (the Marketo id column first of all) with
  UpdateMultiple, 1,000 rows a request; a refused request is retried row by row in one
  ``$batch`` and only the bad rows fail, each reported on its person.

Records someone else changed since the reads (``guard``: modified by another user since the last
look, one query) are held: nothing is written to either side of their pair, and the live sync
gets them at the end, to reconcile with fresh values.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.backfill.context import DONE, MORE, SYNC_LEADS_MAX, Context, Outcome, wait
from shared.backfill.job import JobState, Mode, Phase, now
from shared.backfill.pairs import report
from shared.backfill.reading import marketo_fields, person_value
from shared.backfill.staging import (
    BUCKETS,
    CREATES,
    FAILED,
    FOUND,
    HELD,
    PAIRS,
    Item,
    person_bucket,
    range_width,
    ranges,
    record_bucket,
    record_key,
)
from shared.dataverse import odata
from shared.errors import PermanentError, RateLimitedError, ServiceError
from shared.marketo.bulk_extract import date_windows
from shared.marketo.bulk_import import ImportIssue, import_files
from shared.marketo.models import PushResult
from shared.ports import Link
from shared.sync.journal import Journal
from shared.sync.reads import ENTITY_SETS

IMPORTS_AT_ONCE = 2
PAIRS_PER_IMPORT = 25_000  # a range's file: ~25,000 rows, a few MB with a dozen fields
PAIRS_PER_UPDATE = 5_000  # a range of Dynamics writes: 5 UpdateMultiple requests
# The created persons are looked for from a little before the imports started.
CREATED_MARGIN = timedelta(minutes=5)


# --- held records: changed by someone else during the job ---------------------------------------


def guard(ctx: Context, job: JobState) -> None:
    """Hold the records another user changed since the last look (one query per entity)."""
    since = job.guarded_at or job.read_started_at
    if since is None:
        return
    looked = now()
    own = ctx.rows.own_user_id()
    held: list[Item] = []
    for entity, entity_set in ENTITY_SETS.items():
        clause = odata.and_(
            odata.compare("modifiedon", "ge", since - timedelta(seconds=1)),
            odata.ne("_modifiedby_value", uuid.UUID(own)),
        )
        for row in ctx.dataverse.query(entity_set, select=[f"{entity}id"], filter=clause):
            dynamics_id = str(row[f"{entity}id"]).lower()
            held.append(Item(record_bucket(entity, dynamics_id), record_key(entity, dynamics_id), {}))
    ctx.staging.put(HELD, held)
    job.count("records_held", len(held))
    job.guarded_at = looked


def held_records(ctx: Context) -> set[str]:
    return {item.key for item in ctx.staging.scan(HELD, 0, BUCKETS)}


def _failed(ctx: Context, marketo_ids: Iterable[int], kind: str, why: dict[int, str]) -> None:
    items = [Item(person_bucket(m), f"{kind}:{m}", {"why": why[m]}) for m in marketo_ids]
    ctx.staging.put(FAILED, items)


# --- Marketo: rows, files, jobs ------------------------------------------------------------------


@dataclass
class Rows:
    """Rows for Marketo that share a lookup field, and what each row is (by lookup value)."""

    lookup: str
    entity: str  # the entity of the records (creations), "" for updates by id
    rows: list[dict[str, Any]]
    who: dict[str, Link]

    def fields(self) -> list[str]:
        names = sorted({name for row in self.rows for name in row} - {self.lookup})
        return [self.lookup, *names]

    def key(self, value: object) -> str:
        text = str(value or "")
        return text if self.lookup == "id" else text.lower()


def start_writes(job: JobState, items: int, per_range: int) -> None:
    width = range_width(items, per_range)
    job.cursor.update(width=width, next=0, inflight=[])
    job.progress[job.phase].total = len(ranges(width))


def _update_rows(ctx: Context, first: int, last: int) -> tuple[Rows, Rows]:
    """The range's Marketo updates: (rows an import can carry, rows that blank a field)."""
    held = held_records(ctx)
    bulk = Rows("id", "", [], {})
    blanking = Rows("id", "", [], {})
    for item in ctx.staging.scan(PAIRS, first, last):
        pair = item.value
        if not pair["mc"] or record_key(pair["e"], pair["d"]) in held:
            continue
        target = blanking if any(v is None for v in pair["mc"].values()) else bulk
        target.rows.append({"id": pair["m"], **pair["mc"]})
        target.who[str(pair["m"])] = Link(pair["m"], pair["e"], pair["d"])
    return bulk, blanking


def _create_rows(ctx: Context, first: int, last: int) -> list[Rows]:
    """The range's persons to create, per entity, looked up by the record id they carry."""
    names = ctx.mapping.links
    groups = {
        "lead": Rows(names.marketo_lead_id, "lead", [], {}),
        "contact": Rows(names.marketo_contact_id, "contact", [], {}),
    }
    held = held_records(ctx)
    for item in ctx.staging.scan(CREATES, first, last):
        create = item.value
        if item.key in held:
            continue
        group = groups[create["e"]]
        group.rows.append({**create["rec"], group.lookup: create["d"]})
        group.who[create["d"]] = Link(0, create["e"], create["d"])
    return [g for g in groups.values() if g.rows]


def _submit(ctx: Context, job: JobState, kind: str, groups: list[Rows], entry: dict[str, Any]) -> None:
    """Submit the groups' files in order, from the first Marketo does not have yet (files are
    rebuilt the same way each time, so a resumed range skips exactly what was submitted)."""
    done = len(entry["imports"])
    index = 0
    for group_index, group in enumerate(groups):
        for file in import_files(group.fields(), group.rows):
            index += 1
            if index <= done:
                continue
            submitted = ctx.marketo.imports.submit(file, lookup_field=group.lookup)
            entry["imports"].append([group_index, submitted.batch_id])
            job.count(f"import_files_{kind}")
            job.count(f"import_rows_{kind}", file.records)


def _push(ctx: Context, job: JobState, kind: str, group: Rows, journal: Journal) -> list[tuple[Link, int]]:
    """Sync Leads for a small group (or one that blanks a field): the links written, with the
    person ids Marketo answered; each refused row reported on its person."""
    if not group.rows:
        return []
    action = "updateOnly" if group.lookup == "id" else "createOrUpdate"
    results = ctx.marketo.push_leads(group.rows, action=action, lookup_field=group.lookup)
    written: list[tuple[Link, int]] = []
    refused: dict[str, str] = {}
    for row, result in zip(group.rows, _padded(results, len(group.rows)), strict=True):
        key = group.key(row[group.lookup])
        if result is not None and result.ok and result.id is not None:
            written.append((group.who[key], result.id))
            continue
        code, message = _why(result)
        refused[key] = message
        _report_refusal(group.who[key], code, message, tuple(row), journal)
    _record_refusals(ctx, job, kind, group, refused)
    job.count("marketo_rows_pushed", len(group.rows))
    return written


def _padded(results: Sequence[PushResult], n: int) -> list[PushResult | None]:
    return [*results[:n], *[None] * (n - len(results))]


def _why(result: PushResult | None) -> tuple[str, str]:
    if result is None:
        return "no-answer", "Marketo gave no result for this record"
    reasons = result.reasons
    message = "; ".join(f"{r.code} {r.message}" for r in reasons) or result.status
    return (reasons[0].code if reasons else result.status), message


def _report_refusal(link: Link, code: str, message: str, fields: tuple[str, ...], journal: Journal) -> None:
    """On the person's Activity Log when there is a person; the sync log always."""
    journal.failed(
        link, "marketo", code, message, fields, direction="to_marketo", activity=bool(link.marketo_id)
    )


def _record_refusals(ctx: Context, job: JobState, kind: str, group: Rows, refused: dict[str, str]) -> None:
    """Remember what was not written: its pair gets no shadow (updates), its record no person."""
    items = []
    for key, why in refused.items():
        link = group.who[key]
        if kind == "mw":
            items.append(Item(person_bucket(link.marketo_id), f"mw:{link.marketo_id}", {"why": why}))
        else:
            rkey = record_key(link.entity, link.dynamics_id)
            items.append(Item(record_bucket(link.entity, link.dynamics_id), f"cf:{rkey}", {"why": why}))
    ctx.staging.put(FAILED, items)
    job.count("marketo_failures" if kind == "mw" else "create_failures", len(items))


def _groups(ctx: Context, kind: str, first: int, last: int) -> tuple[list[Rows], Rows | None]:
    """The range's row groups for imports, and the rows only Sync Leads can write."""
    if kind == "mw":
        bulk, blanking = _update_rows(ctx, first, last)
        return [bulk], blanking
    return _create_rows(ctx, first, last), None


def write_ranges(ctx: Context, job: JobState, kind: str) -> Outcome:
    """A unit of ``marketo_writes`` (``kind`` "mw") or ``creates`` ("cf")."""
    cursor = job.cursor
    walk = ranges(cursor["width"])
    if cursor["next"] < len(walk) and len(cursor["inflight"]) < IMPORTS_AT_ONCE:
        outcome = _start_range(ctx, job, kind, walk)
        if outcome is not None:
            return outcome
        return MORE
    if cursor["inflight"]:
        return _collect(ctx, job, kind)
    return DONE


def _start_range(ctx: Context, job: JobState, kind: str, walk: list[tuple[int, int]]) -> Outcome | None:
    cursor = job.cursor
    entry = cursor.get("starting") or {"at": cursor["next"], "imports": [], "pushed": False}
    if not entry["pushed"]:
        guard(ctx, job)
    first, last = walk[entry["at"]]
    groups, blanking = _groups(ctx, kind, first, last)
    few = sum(len(g.rows) for g in groups) <= SYNC_LEADS_MAX or job.options.mode is Mode.REST
    journal = Journal(0)
    if not entry["pushed"]:
        pushed = [*([blanking] if blanking else []), *(groups if few else [])]
        for group in pushed:
            written = _push(ctx, job, kind, group, journal)
            if kind == "cf":
                _found(ctx, job, [(link, m) for link, m in written])
        entry["pushed"] = True
    if not few:
        try:
            _submit(ctx, job, kind, groups, entry)
        except RateLimitedError as exc:
            cursor["starting"] = entry  # the import queue is full: the rest later
            report(ctx, journal)
            return None if cursor["inflight"] else wait(exc.retry_after or ctx.poll_seconds)
    report(ctx, journal)
    cursor.pop("starting", None)
    cursor["next"] = entry["at"] + 1
    if entry["imports"]:
        cursor["inflight"].append(entry)
    else:
        job.advance(1)
    return None


def _collect(ctx: Context, job: JobState, kind: str) -> Outcome:
    """The oldest range at Marketo: when its jobs are done, report what they refused or warned
    about, each row on its person."""
    entry = job.cursor["inflight"][0]
    jobs = [ctx.marketo.imports.status(batch_id) for _, batch_id in entry["imports"]]
    if not all(j.finished for j in jobs):
        return wait(ctx.poll_seconds)
    first, last = ranges(job.cursor["width"])[entry["at"]]
    groups, _ = _groups(ctx, kind, first, last)
    journal = Journal(0)
    refused: dict[int, dict[str, str]] = {}
    for (group_index, _), done in zip(entry["imports"], jobs, strict=True):
        if done.status == "Failed":
            raise PermanentError(f"Marketo import {done.batch_id} failed: {done.message}", service="marketo")
        group = groups[group_index]
        issues = [*ctx.marketo.imports.failures(done.batch_id), *ctx.marketo.imports.warnings(done.batch_id)]
        for issue in issues:
            _refused_row(group, issue, refused.setdefault(group_index, {}), journal)
    for group_index, rows in refused.items():
        _record_refusals(ctx, job, kind, groups[group_index], rows)
    report(ctx, journal)
    job.cursor["inflight"].pop(0)
    job.advance(1)
    return MORE


def _refused_row(group: Rows, issue: ImportIssue, refused: dict[str, str], journal: Journal) -> None:
    key = group.key(issue.values.get(group.lookup))
    link = group.who.get(key)
    if link is None:
        journal.note(Link(0, "-", ""), "failed", f"Marketo import row {group.lookup}={key}: {issue.reason}")
        return
    refused[key] = issue.reason
    fields = tuple(name for name, cell in issue.values.items() if cell and name != group.lookup)
    _report_refusal(link, "import", issue.reason, fields, journal)


def write_marketo(ctx: Context, job: JobState) -> Outcome:
    return write_ranges(ctx, job, "mw")


def write_creates(ctx: Context, job: JobState) -> Outcome:
    return write_ranges(ctx, job, "cf")


# --- the persons created: their ids ---------------------------------------------------------------


def _found(ctx: Context, job: JobState, created: Sequence[tuple[Link, int]]) -> None:
    items = [
        Item(
            record_bucket(link.entity, link.dynamics_id), record_key(link.entity, link.dynamics_id), {"m": m}
        )
        for link, m in created
    ]
    ctx.staging.put(FOUND, items)


def start_created_ids(ctx: Context, job: JobState) -> None:
    imported = job.counts.get("import_files_cf", 0)
    begun = job.progress.get(Phase.CREATES)
    since = (begun.started_at if begun and begun.started_at else now()) - CREATED_MARGIN
    job.cursor.update(export=None, extracted=not imported, since=since.isoformat(), at=0)
    job.cursor["width"] = range_width(job.counts.get("persons_to_create", 0), 5_000)
    job.progress[job.phase].total = len(ranges(job.cursor["width"])) + (0 if not imported else 1)


def created_ids(ctx: Context, job: JobState) -> Outcome:
    cursor = job.cursor
    if not cursor["extracted"]:
        return _extract_created(ctx, job)
    walk = ranges(cursor["width"])
    if cursor["at"] >= len(walk):
        return DONE
    first, last = walk[cursor["at"]]
    _pair_created(ctx, job, first, last)
    cursor["at"] += 1
    job.advance(1)
    return MORE if cursor["at"] < len(walk) else DONE


def _extract_created(ctx: Context, job: JobState) -> Outcome:
    """One export of the persons created since the imports began (a window per 31 days)."""
    cursor = job.cursor
    if cursor["export"] is None:
        since = datetime.fromisoformat(cursor["since"])
        windows = list(date_windows(since, now()))
        cursor["windows"] = [[a.isoformat(), b.isoformat()] for a, b in windows]
        cursor["window"] = 0
    window = [datetime.fromisoformat(t) for t in cursor["windows"][cursor["window"]]]
    if cursor["export"] is None:
        try:
            export = ctx.marketo.exports.create(marketo_fields(ctx), created=(window[0], window[1]))
            ctx.marketo.exports.enqueue(export.export_id)
        except RateLimitedError as exc:
            return wait(exc.retry_after or ctx.poll_seconds)
        cursor["export"] = export.export_id
        return MORE
    export = ctx.marketo.exports.status(cursor["export"])
    if not export.finished:
        return wait(ctx.poll_seconds)
    if export.status != "Completed":
        cursor["export"] = None  # again
        return MORE
    names = ctx.mapping.links
    created: list[tuple[Link, int]] = []
    if export.number_of_records:
        for row in ctx.marketo.exports.rows(export):
            person = person_value(ctx, row)
            for entity, column in (("lead", names.marketo_lead_id), ("contact", names.marketo_contact_id)):
                if person.get(column) and (entity == "contact" or not person.get(names.marketo_contact_id)):
                    created.append((Link(0, entity, str(person[column]).lower()), person["id"]))
                    break
            if len(created) >= 5_000:
                _found(ctx, job, created)
                created = []
    _found(ctx, job, created)
    cursor["export"] = None
    cursor["window"] += 1
    if cursor["window"] >= len(cursor["windows"]):
        cursor["extracted"] = True
        job.advance(1)
    return MORE


def _pair_created(ctx: Context, job: JobState, first: int, last: int) -> None:
    """Each record that got a person becomes a pair: the person's id goes on the record."""
    found = {i.key: int(i.value["m"]) for i in ctx.staging.scan(FOUND, first, last)}
    failed = {i.key for i in ctx.staging.scan(FAILED, first, last)}
    creates = ctx.staging.scan(CREATES, first, last)
    missing = [c for c in creates if c.key not in found and f"cf:{c.key}" not in failed]
    found.update(_look_up(ctx, missing))
    column = ctx.mapping.links.dynamics_marketo_id
    pairs: list[Item] = []
    journal = Journal(0)
    for create in creates:
        value = create.value
        marketo_id = found.get(create.key)
        if marketo_id is None:
            if f"cf:{create.key}" not in failed:
                who = Link(0, value["e"], value["d"])
                message = "the person was imported but Marketo does not show it"
                journal.failed(who, "marketo", "not-found", message, direction="to_marketo", activity=False)
                job.count("create_failures")
            continue
        pair = {
            "m": marketo_id,
            "e": value["e"],
            "d": value["d"],
            "how": "created",
            "new": True,
            "mc": {},
            "dc": {column: str(marketo_id)},
            "sh": value["vals"],
            "et": "",
        }
        pairs.append(Item(person_bucket(marketo_id), str(marketo_id), pair))
    ctx.staging.put(PAIRS, pairs)
    job.count("persons_created", len(pairs))
    report(ctx, journal)


def _look_up(ctx: Context, creates: Sequence[Item]) -> dict[str, int]:
    """Persons the export did not show (created before the window, by an earlier run or the live
    sync), by the record id they carry: REST, 300 a call."""
    names = ctx.mapping.links
    found: dict[str, int] = {}
    for entity, column in (("lead", names.marketo_lead_id), ("contact", names.marketo_contact_id)):
        ids = [c.value["d"] for c in creates if c.value["e"] == entity]
        if not ids:
            continue
        for person in ctx.marketo.get_leads_by_filter(column, ids, ["id", column]):
            found[record_key(entity, str(person[column]))] = int(person["id"])
    return found


# --- Dynamics: UpdateMultiple ---------------------------------------------------------------------


def write_dynamics(ctx: Context, job: JobState) -> Outcome:
    cursor = job.cursor
    walk = ranges(cursor["width"])
    if cursor["next"] >= len(walk):
        return DONE
    guard(ctx, job)
    held = held_records(ctx)
    first, last = walk[cursor["next"]]
    journal = Journal(0)
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for item in ctx.staging.scan(PAIRS, first, last):
        pair = item.value
        if pair["dc"] and record_key(pair["e"], pair["d"]) not in held:
            by_entity.setdefault(pair["e"], []).append(pair)
    failed: dict[int, str] = {}
    for entity, pairs in by_entity.items():
        rows = [{f"{entity}id": p["d"], **p["dc"]} for p in pairs]
        for result in ctx.dataverse.update_rows(ENTITY_SETS[entity], entity, rows):
            if result.ok:
                continue
            pair = pairs[result.index]
            error = result.error
            assert error is not None
            failed[pair["m"]] = error.message
            _report_row(Link(pair["m"], entity, pair["d"]), error, tuple(pair["dc"]), journal)
        job.count("dynamics_rows_written", len(rows))
    ctx.staging.put(FAILED, [Item(person_bucket(m), f"dw:{m}", {"why": why}) for m, why in failed.items()])
    job.count("dynamics_failures", len(failed))
    report(ctx, journal)
    cursor["next"] += 1
    job.advance(1)
    return MORE if cursor["next"] < len(walk) else DONE


def _report_row(link: Link, error: ServiceError, fields: tuple[str, ...], journal: Journal) -> None:
    named = getattr(error, "fields", ()) or fields
    journal.failed(link, "rejected", error.code or "dataverse", error.message, named)
