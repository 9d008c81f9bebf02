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

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain, islice
from typing import Any

from shared.backfill.context import DONE, MORE, Context, Outcome, wait
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
    ranges,
    record_bucket,
    record_key,
)
from shared.dataverse import odata
from shared.dataverse.odata import ENTITY_SETS
from shared.errors import PermanentError, RateLimitedError, ServiceError
from shared.marketo.bulk_extract import date_windows
from shared.marketo.bulk_import import import_files
from shared.marketo.models import PushResult
from shared.ports import Link
from shared.sync.journal import Journal

IMPORTS_AT_ONCE = 2
PAIRS_PER_IMPORT = 150_000  # a range: streamed into files of 10 MB (one or two)
PAIRS_PER_UPDATE = 5_000  # a range of Dynamics writes: 5 UpdateMultiple requests
# The created persons are looked for from a little before the imports started.
CREATED_MARGIN = timedelta(minutes=5)
# What live batches claimed, from the fence: record keys and Marketo ids.
Claims = tuple[set[str] | frozenset[str], set[int] | frozenset[int]]


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


def enter_range(ctx: Context, name: str, first: int, last: int) -> Claims:
    """Announce the range's writes to the live sync (shared/backfill/fence.py) before they are
    checked; what live batches have claimed, to hold."""
    if ctx.fence is None:
        return set(), set()
    return ctx.fence.enter(name, name.split(":", maxsplit=1)[0], first, last)


def leave_range(ctx: Context, name: str) -> None:
    """The range's writes have landed: the live sync may write its records again."""
    if ctx.fence is not None:
        ctx.fence.leave(name)


def fence_settling(ctx: Context) -> Outcome | None:
    """A wait while the fence is younger than the longest live batch: one that began before it
    went up did not claim, and must have stored its link and shadow before a range is checked."""
    if ctx.fence is None:
        return None
    left = ctx.fence.current().since + ctx.fence_settle_seconds - time.time()
    return wait(left) if left > 0 else None


def hold_taken(
    ctx: Context, job: JobState, first: int, last: int, claimed: Claims = (frozenset(), frozenset())
) -> None:
    """Hold the range's records the live sync has handled since the reads: one the backfill would
    link for the first time (or create a person for) that now has a link, a person it would link
    that now has one, a linked pair whose shadow moved. The live sync got there first, with
    fresher values. The guard's query does not see these when the live sync wrote the record
    after the user did (its write hides theirs), so the state store is asked, a chunk of the
    range at a time (memory stays flat: a range of imports holds 150,000 pairs). ``claimed``:
    the records and persons live batches claimed before the range was entered (their writes
    may not have landed, nor their links been stored, yet)."""
    before = held_records(ctx)
    pairs = (item.value for item in ctx.staging.stream(PAIRS, first, last))
    creates = ({**c.value, "new": True, "m": None} for c in ctx.staging.stream(CREATES, first, last))
    rows = chain(pairs, creates)
    taken: set[tuple[str, str]] = set()
    records, persons = claimed
    while chunk := list(islice(rows, 1_000)):
        taken |= _taken(ctx, chunk)
        taken |= {
            (p["e"], p["d"]) for p in chunk if record_key(p["e"], p["d"]) in records or p["m"] in persons
        }
    fresh = [Item(record_bucket(e, d), record_key(e, d), {}) for e, d in sorted(taken)]
    fresh = [item for item in fresh if item.key not in before]  # counted once, whatever repeats
    if fresh:
        ctx.staging.put(HELD, fresh)
        job.count("records_taken_by_live_sync", len(fresh))


def _taken(ctx: Context, pairs: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Of these pairs (and records to create a person for: ``m`` None), those the live sync
    handled since the reads."""
    taken: set[tuple[str, str]] = set()
    for entity in ENTITY_SETS:
        ids = [p["d"] for p in pairs if p["new"] and p["e"] == entity]
        found = ctx.state.get_links_by_dynamics(entity, ids) if ids else {}
        taken.update((entity, d.lower()) for d in found)
    new = {p["m"]: p for p in pairs if p["new"] and p["m"] is not None}
    linked = {p["m"]: p for p in pairs if not p["new"]}
    people = ctx.state.get_links_by_marketo(new) if new else {}
    shadows = ctx.state.get_shadows([*new, *linked]) if new or linked else {}
    for marketo_id, pair in new.items():
        if marketo_id in people or marketo_id in shadows:
            taken.add((pair["e"], pair["d"]))
    for marketo_id, pair in linked.items():
        shadow = shadows.get(marketo_id)
        if (shadow.etag if shadow is not None else "") != pair["et"]:
            taken.add((pair["e"], pair["d"]))
    return taken


def held_records(ctx: Context) -> set[str]:
    return {item.key for item in ctx.staging.scan(HELD, 0, BUCKETS)}


# --- Marketo: rows, files, jobs ------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One stream of rows for Marketo: the lookup field they share, and the file's columns
    (every field the backfill may write: a row leaves the cells of the others empty, which
    changes nothing)."""

    lookup: str
    entity: str  # the entity of the records (creations); "" for updates by id
    fields: tuple[str, ...]

    def key(self, value: object) -> str:
        text = str(value or "")
        return text if self.lookup == "id" else f"{self.entity}:{text.lower()}"


def _writable(ctx: Context) -> list[str]:
    return sorted(set(ctx.mapping.marketo_fields()) - {"id"})


def _sources(ctx: Context, kind: str) -> list[Source]:
    fields = _writable(ctx)
    if kind == "mw":
        return [Source("id", "", ("id", *fields))]
    names = ctx.mapping.links
    return [
        Source(
            names.marketo_lead_id,
            "lead",
            (names.marketo_lead_id, *[f for f in fields if f != names.marketo_lead_id]),
        ),
        Source(
            names.marketo_contact_id,
            "contact",
            (names.marketo_contact_id, *[f for f in fields if f != names.marketo_contact_id]),
        ),
    ]


def start_writes(ctx: Context, job: JobState, items: int, per_range: int) -> None:
    if job.options.mode is Mode.REST:
        per_range = min(per_range, PAIRS_PER_UPDATE)  # Sync Leads takes the range in memory
    width = ctx.width(items, per_range)
    job.cursor.update(width=width, next=0, inflight=[])
    job.progress[job.phase].total = len(ranges(width))


def write_marketo(ctx: Context, job: JobState) -> Outcome:
    return MarketoWrites(ctx, job, "mw").unit()


def write_creates(ctx: Context, job: JobState) -> Outcome:
    return MarketoWrites(ctx, job, "cf").unit()


def _padded(results: Sequence[PushResult], n: int) -> list[PushResult | None]:
    return [*results[:n], *[None] * (n - len(results))]


def _why(result: PushResult | None) -> tuple[str, str]:
    if result is None:
        return "no-answer", "Marketo gave no result for this record"
    reasons = result.reasons
    message = "; ".join(f"{r.code} {r.message}" for r in reasons) or result.status
    return (reasons[0].code if reasons else result.status), message


class MarketoWrites:
    """One unit of ``marketo_writes`` (``kind`` "mw": updates by id) or ``creates`` ("cf"):
    start the next range, or collect the oldest one at Marketo."""

    def __init__(self, ctx: Context, job: JobState, kind: str) -> None:
        self.ctx, self.job, self.kind = ctx, job, kind
        self.cursor = job.cursor
        self.journal = Journal(0)

    def unit(self) -> Outcome:
        cursor = self.cursor
        walk = ranges(cursor["width"])
        startable = cursor.get("starting") or cursor["next"] < len(walk)
        if startable and len(cursor["inflight"]) < IMPORTS_AT_ONCE:
            if (settling := fence_settling(self.ctx)) is not None:
                return settling
            waiting = self._start(walk)
            report(self.ctx, self.journal)
            if waiting is None:
                return MORE
            if not cursor["inflight"]:
                return waiting
        if cursor["inflight"]:
            outcome = self._collect()
            report(self.ctx, self.journal)
            return outcome
        return DONE

    # --- sending a range -------------------------------------------------------------------------

    def _rows(
        self, source: Source, first: int, last: int, held: set[str], blanking: list[dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """The range's rows for ``source``, streamed from the staging (memory stays flat whatever
        the range's size). An update that blanks a field goes to ``blanking`` (Sync Leads): an
        import's empty cell leaves a value as it is."""
        if self.kind == "mw":
            for item in self.ctx.staging.stream(PAIRS, first, last):
                pair = item.value
                if not pair["mc"] or record_key(pair["e"], pair["d"]) in held:
                    continue
                row = {"id": pair["m"], **pair["mc"]}
                if any(v is None for v in pair["mc"].values()):
                    blanking.append(row)
                else:
                    yield row
            return
        for item in self.ctx.staging.stream(CREATES, first, last):
            create = item.value
            if create["e"] == source.entity and item.key not in held:
                yield {**create["rec"], source.lookup: create["d"]}

    def _start(self, walk: list[tuple[int, int]]) -> Outcome | None:
        """Send the range's rows: Sync Leads for a source of few rows (and for updates that blank
        a field), files for the others, from the first file Marketo does not have yet (files are
        built the same way each time). None when sent; a wait when the import queue is full."""
        ctx, job, cursor = self.ctx, self.job, self.cursor
        if "starting" not in cursor:
            guard(ctx, job)
        entry = cursor.get("starting") or {"at": cursor["next"], "imports": [], "pushed": []}
        first, last = walk[entry["at"]]
        name = self._range_name(entry)
        hold_taken(ctx, job, first, last, enter_range(ctx, name, first, last))
        held = held_records(ctx)
        try:
            self._send(entry, first, last, held)
        except RateLimitedError as exc:
            cursor["starting"] = entry  # the import queue is full: the rest of the range later
            return wait(exc.retry_after or ctx.poll_seconds)
        cursor.pop("starting", None)
        cursor["next"] = entry["at"] + 1
        if entry["imports"]:
            cursor["inflight"].append(entry)  # left once Marketo has imported it (_collect)
        else:
            leave_range(ctx, name)
            job.advance(1)
        return None

    def _range_name(self, entry: dict[str, Any]) -> str:
        return f"{self.kind}:{entry['at']}"

    def _send(self, entry: dict[str, Any], first: int, last: int, held: set[str]) -> None:
        submitted = 0
        for index, source in enumerate(_sources(self.ctx, self.kind)):
            blanking: list[dict[str, Any]] = []
            rows = self._rows(source, first, last, held, blanking)
            few = list(islice(rows, self.ctx.sync_leads_max + 1))
            pushed = index in entry["pushed"]
            if len(few) <= self.ctx.sync_leads_max or self.job.options.mode is Mode.REST:
                if not pushed:
                    self._push(source, [*few, *rows])
                    self._push(source, blanking)
                    entry["pushed"].append(index)
                continue
            for file in import_files(source.fields, chain(few, rows)):
                submitted += 1
                if submitted <= len(entry["imports"]):
                    continue
                batch = self.ctx.marketo.imports.submit(file, lookup_field=source.lookup)
                entry["imports"].append([index, batch.batch_id])
                self.job.count(f"import_files_{self.kind}")
                self.job.count(f"import_rows_{self.kind}", file.records)
            if not pushed:
                self._push(source, blanking)  # known once the stream has been read
                entry["pushed"].append(index)

    def _push(self, source: Source, rows: Sequence[dict[str, Any]]) -> None:
        """Sync Leads (300 a call); each refused row reported on its person; a created person's
        id noted for its record."""
        if not rows:
            return
        action = "updateOnly" if source.lookup == "id" else "createOrUpdate"
        results = self.ctx.marketo.push_leads(rows, action=action, lookup_field=source.lookup)
        created: list[tuple[Link, int]] = []
        refused: dict[str, str] = {}
        for row, result in zip(rows, _padded(results, len(rows)), strict=True):
            key = source.key(row[source.lookup])
            if result is not None and result.ok and result.id is not None:
                if self.kind == "cf":
                    created.append((self._who(key), result.id))
                continue
            code, message = _why(result)
            refused[key] = message
            self._report(self._who(key), code, message, tuple(n for n, v in row.items() if v is not None))
        _found(self.ctx, created)
        self._refused(refused)
        self.job.count("marketo_rows_pushed", len(rows))

    # --- what Marketo refused --------------------------------------------------------------------

    def _who(self, key: str) -> Link:
        """The pair (updates, by Marketo id) or record (creations) a row is about."""
        if self.kind == "mw":
            marketo_id = int(key)
            bucket = person_bucket(marketo_id)
            for item in self.ctx.staging.scan(PAIRS, bucket, bucket + 1):
                if item.key == key:
                    return Link(marketo_id, item.value["e"], item.value["d"])
            return Link(marketo_id, "-", "")
        entity, dynamics_id = key.split(":", 1)
        return Link(0, entity, dynamics_id)

    def _report(self, link: Link, code: str, message: str, fields: tuple[str, ...]) -> None:
        """On the person's Activity Log when there is a person; the sync log always."""
        self.journal.failed(
            link, "marketo", code, message, fields, direction="to_marketo", activity=bool(link.marketo_id)
        )

    def _refused(self, refused: dict[str, str]) -> None:
        """Remember what was not written: its pair gets no shadow (updates), its record no person."""
        items = []
        for key, why in refused.items():
            if self.kind == "mw":
                items.append(Item(person_bucket(int(key)), f"mw:{key}", {"why": why}))
            else:
                entity, dynamics_id = key.split(":", 1)
                items.append(Item(record_bucket(entity, dynamics_id), f"cf:{key}", {"why": why}))
        self.ctx.staging.put(FAILED, items)
        self.job.count("marketo_failures" if self.kind == "mw" else "create_failures", len(items))

    def _collect(self) -> Outcome:
        """The oldest range at Marketo: when its jobs are done, report each row their failures and
        warnings files name, on its person."""
        imports = self.ctx.marketo.imports
        entry = self.cursor["inflight"][0]
        jobs = [imports.status(batch_id) for _, batch_id in entry["imports"]]
        if not all(j.finished for j in jobs):
            return wait(self.ctx.poll_seconds)
        sources = _sources(self.ctx, self.kind)
        for (index, _), done in zip(entry["imports"], jobs, strict=True):
            if done.status == "Failed":
                raise PermanentError(
                    f"Marketo import {done.batch_id} failed: {done.message}", service="marketo"
                )
            source = sources[index]
            refused: dict[str, str] = {}
            for issue in chain(imports.failures(done.batch_id), imports.warnings(done.batch_id)):
                key = source.key(issue.values.get(source.lookup))
                refused[key] = issue.reason
                fields = tuple(name for name, cell in issue.values.items() if cell and name != source.lookup)
                self._report(self._who(key), "import", issue.reason, fields)
            self._refused(refused)
        self.cursor["inflight"].pop(0)
        leave_range(self.ctx, self._range_name(entry))
        self.job.advance(1)
        return MORE


# --- the persons created: their ids ---------------------------------------------------------------


def _found(ctx: Context, created: Sequence[tuple[Link, int]]) -> None:
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
    job.cursor["width"] = ctx.width(job.counts.get("persons_to_create", 0), 5_000)
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
                _found(ctx, created)
                created = []
    _found(ctx, created)
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
    if (settling := fence_settling(ctx)) is not None:
        return settling
    name = f"dw:{cursor['next']}"
    first, last = walk[cursor["next"]]
    claimed = enter_range(ctx, name, first, last)
    guard(ctx, job)
    hold_taken(ctx, job, first, last, claimed)
    held = held_records(ctx)
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
    leave_range(ctx, name)
    cursor["next"] += 1
    job.advance(1)
    return MORE if cursor["next"] < len(walk) else DONE


def _report_row(link: Link, error: ServiceError, fields: tuple[str, ...], journal: Journal) -> None:
    named = getattr(error, "fields", ()) or fields
    journal.failed(link, "rejected", error.code or "dataverse", error.message, named)
