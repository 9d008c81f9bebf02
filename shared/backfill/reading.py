"""The reading phases: what both sides hold, staged for matching.

* ``links``: every stored link, a page of 1,000 a request, staged by record and by person;
* ``marketo``: every person through Bulk Lead Extract, one export per ``createdAt`` window of
  at most 31 days (``--since``: per ``updatedAt`` window; a subscription without that filter,
  1035, reads every window and keeps the persons updated since), up to two exports at Marketo
  at once (of the queue's 10, shared with every integration). A window's file is streamed and
  staged as it is read, so its size costs no memory; a kill re-reads that window;
* ``dynamics``: leads then contacts with ``read_table``, pages of 5,000 rows of the mapped
  columns (``--since``: modified since); the cursor is the page's next link, so a kill re-reads
  one page;
* ``partners`` (``--since``, and the REST-only mode): the other side of what was read, looked
  up by id and email (REST, 300 a call; Dataverse, 250 ids a query).

Every item is staged by its key, so a unit read twice is staged once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain
from typing import Any

from shared.backfill.context import DONE, MORE, Context, Outcome, wait
from shared.backfill.job import JobState, Mode, now
from shared.backfill.staging import (
    LINKS_BY_PERSON,
    LINKS_BY_RECORD,
    PERSONS,
    RECORDS,
    Item,
    person_bucket,
    ranges,
    record_bucket,
    record_key,
)
from shared.dataverse import odata
from shared.dataverse.odata import ENTITY_SETS
from shared.errors import (
    NotFoundError,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    UnsupportedError,
)
from shared.marketo.bulk_extract import ExportJob, date_windows
from shared.normalize import email_key
from shared.ports import Link
from shared.sync.reads import IDS_PER_QUERY

STAGE_CHUNK = 5_000
EXPORTS_AT_ONCE = 2
EXPORT_RETRIES = 3
ENTITIES = ("lead", "contact")
TRUE = {"true", "1", "yes"}


# --- links ---------------------------------------------------------------------------------------


def link_items(links: Iterable[Link]) -> Iterator[tuple[str, Item]]:
    for link in links:
        value = {"m": link.marketo_id, "e": link.entity, "d": link.dynamics_id.lower()}
        yield (
            LINKS_BY_RECORD,
            Item(
                record_bucket(link.entity, link.dynamics_id), record_key(link.entity, link.dynamics_id), value
            ),
        )
        yield LINKS_BY_PERSON, Item(person_bucket(link.marketo_id), str(link.marketo_id), value)


def stage(ctx: Context, items: Iterable[tuple[str, Item]]) -> None:
    by_table: dict[str, list[Item]] = {}
    for table, item in items:
        by_table.setdefault(table, []).append(item)
    for table, chunk in by_table.items():
        ctx.staging.put(table, chunk)


def read_links(ctx: Context, job: JobState) -> Outcome:
    after = int(job.cursor.get("after", 0))
    links = ctx.state.list_links(after=after, limit=ctx.link_page)
    stage(ctx, link_items(links))
    if links:
        job.cursor["after"] = links[-1].marketo_id
    job.count("links_read", len(links))
    job.advance(len(links))
    return DONE if len(links) < ctx.link_page else MORE


# --- Marketo: Bulk Lead Extract ------------------------------------------------------------------


def person_value(ctx: Context, row: dict[str, Any]) -> dict[str, Any]:
    """A person as read (an export row or a REST record), with the link fields typed as the
    REST API types them (an export file holds text)."""
    person = dict(row)
    person["id"] = int(str(row["id"]))
    deleted = ctx.mapping.links.marketo_is_deleted
    flag = person.get(deleted)
    if isinstance(flag, str):
        person[deleted] = flag.strip().lower() in TRUE
    return person


def person_items(ctx: Context, people: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Item]]:
    for row in people:
        person = person_value(ctx, row)
        yield PERSONS, Item(person_bucket(person["id"]), str(person["id"]), {"p": person})


def marketo_fields(ctx: Context) -> list[str]:
    return sorted({*ctx.mapping.marketo_fields(), "updatedAt"})


def start_marketo(ctx: Context, job: JobState) -> None:
    since = job.options.since
    if since is not None:
        windows = list(date_windows(since, now()))
        job.cursor.update(filter="updated")
    else:
        windows = list(date_windows(job.options.created_from, now()))
        job.cursor.update(filter="created")
    job.cursor.update(
        windows=[[a.isoformat(), b.isoformat()] for a, b in windows], next=0, inflight={}, retry=[]
    )
    job.progress[job.phase].total = len(windows)


def _keep_since(job: JobState) -> datetime | None:
    """Persons updated before this are dropped while reading (the ``updatedAt`` fallback)."""
    value = job.cursor.get("keep_since")
    return datetime.fromisoformat(value) if value else None


def read_marketo(ctx: Context, job: JobState) -> Outcome:
    cursor = job.cursor
    inflight: dict[str, str] = cursor["inflight"]
    pending = [*cursor["retry"], *range(cursor["next"], len(cursor["windows"]))]
    if pending and len(inflight) < EXPORTS_AT_ONCE:
        outcome = _start_export(ctx, job, pending[0])
        if outcome is not None:
            return outcome
        return MORE
    if not inflight:
        return DONE
    return _collect_export(ctx, job)


def _start_export(ctx: Context, job: JobState, index: int) -> Outcome | None:
    cursor = job.cursor
    start, end = (datetime.fromisoformat(t) for t in cursor["windows"][index])
    window = (start, end)
    try:
        if cursor["filter"] == "updated":
            export = ctx.marketo.exports.create(marketo_fields(ctx), updated=window)
        else:
            export = ctx.marketo.exports.create(marketo_fields(ctx), created=window)
        ctx.marketo.exports.enqueue(export.export_id)
    except UnsupportedError:
        # No updatedAt filter on this subscription (1035): read every window, keep the updated.
        since = job.options.since
        assert since is not None
        windows = list(date_windows(job.options.created_from, now()))
        cursor.update(
            filter="created",
            windows=[[a.isoformat(), b.isoformat()] for a, b in windows],
            next=0,
            inflight={},
            retry=[],
            keep_since=since.isoformat(),
        )
        job.progress[job.phase].total = len(windows)
        return MORE
    except (RateLimitedError, QuotaExhaustedError) as exc:
        # The queue is full (other integrations' exports) or today's allowance is spent.
        if cursor["inflight"]:
            return _collect_export(ctx, job)
        return wait(exc.retry_after or ctx.poll_seconds)
    cursor["inflight"][str(index)] = export.export_id
    if index in cursor["retry"]:
        cursor["retry"].remove(index)
    else:
        cursor["next"] = index + 1
    return None


def _collect_export(ctx: Context, job: JobState) -> Outcome:
    cursor = job.cursor
    for index, export_id in sorted(cursor["inflight"].items(), key=lambda kv: int(kv[0])):
        try:
            export = ctx.marketo.exports.status(export_id)
        except NotFoundError:
            export = ExportJob(export_id, "Failed", "CSV", error="not found")
        if not export.finished:
            continue
        del cursor["inflight"][index]
        if export.status != "Completed":
            retries = cursor.setdefault("failures", {})
            retries[index] = retries.get(index, 0) + 1
            if retries[index] > EXPORT_RETRIES:
                raise PermanentError(
                    f"the export of window {index} failed {retries[index]} times: {export.error}",
                    service="marketo",
                )
            cursor["retry"].append(int(index))
            return MORE
        read = _stage_export(ctx, job, export)
        job.count("persons_read", read)
        job.advance(1)
        return MORE
    return wait(ctx.poll_seconds)


def _stage_export(ctx: Context, job: JobState, export: ExportJob) -> int:
    if not export.number_of_records:
        return 0
    keep_since = _keep_since(job)
    chunk: list[dict[str, Any]] = []
    read = 0
    for row in ctx.marketo.exports.rows(export):
        if keep_since is not None and (row.get("updatedAt") or "") < keep_since.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ):
            continue
        chunk.append(row)
        if len(chunk) >= STAGE_CHUNK:
            stage(ctx, person_items(ctx, chunk))
            read += len(chunk)
            chunk = []
    stage(ctx, person_items(ctx, chunk))
    return read + len(chunk)


# --- Dynamics: read_table ------------------------------------------------------------------------


def dynamics_select(ctx: Context, entity: str) -> list[str]:
    return sorted({*ctx.rows.select(entity), "createdon"})


def record_value(entity: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"e": entity, "r": {k: v for k, v in row.items() if not k.startswith("@")}}


def record_items(entity: str, rows: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Item]]:
    key = f"{entity}id"
    for row in rows:
        record_id = str(row[key]).lower()
        yield (
            RECORDS,
            Item(record_bucket(entity, record_id), record_key(entity, record_id), record_value(entity, row)),
        )


def start_dynamics(ctx: Context, job: JobState) -> None:
    job.cursor.update(entity=ENTITIES[0], link=None)
    if job.options.since is None:
        try:
            counts = ctx.dataverse.estimated_counts(list(ENTITIES))
        except PermanentError:
            return  # an estimate for the ETA only
        job.progress[job.phase].total = sum(counts.values())


def read_dynamics(ctx: Context, job: JobState) -> Outcome:
    entity = job.cursor["entity"]
    pages = ctx.dataverse.read_table(
        ENTITY_SETS[entity],
        dynamics_select(ctx, entity),
        modified_since=job.options.since,
        page_size=ctx.page_size,
        resume_from=job.cursor.get("link"),
    )
    page = next(iter(pages))
    stage(ctx, record_items(entity, page.rows))
    job.count("records_read", len(page.rows))
    job.count(f"{entity}s_read", len(page.rows))
    job.advance(len(page.rows))
    if page.next_link:
        job.cursor["link"] = page.next_link
        return MORE
    following = ENTITIES.index(entity) + 1
    if following == len(ENTITIES):
        return DONE
    job.cursor.update(entity=ENTITIES[following], link=None)
    return MORE


# --- partners: the other side of what changed (--since, REST-only) ------------------------------


def partners_needed(job: JobState) -> bool:
    return job.options.since is not None or job.options.mode is Mode.REST


def start_partners(ctx: Context, job: JobState) -> None:
    records = job.counts.get("records_read", 0)
    persons = job.counts.get("persons_read", 0)
    passes = ["records"] + (["persons"] if job.options.mode is Mode.BULK else [])
    job.cursor.update(passes=passes, width=ctx.width(records, 3_000), pwidth=ctx.width(persons, 3_000), at=0)
    total = len(ranges(ctx.width(records, 3_000)))
    if "persons" in passes:
        total += len(ranges(ctx.width(persons, 3_000)))
    job.progress[job.phase].total = total


def read_partners(ctx: Context, job: JobState) -> Outcome:
    cursor = job.cursor
    if not cursor["passes"]:
        return DONE
    current = cursor["passes"][0]
    walk = ranges(cursor["width"] if current == "records" else cursor["pwidth"])
    first, last = walk[cursor["at"]]
    if current == "records":
        _persons_of_records(ctx, job, first, last)
    else:
        _records_of_persons(ctx, job, first, last)
    job.advance(1)
    cursor["at"] += 1
    if cursor["at"] == len(walk):
        cursor["passes"].pop(0)
        cursor["at"] = 0
    return MORE if cursor["passes"] else DONE


def _persons_of_records(ctx: Context, job: JobState, first: int, last: int) -> None:
    """The persons the records read name (a link, a stored id) or share an email with."""
    links = {i.key: i.value for i in ctx.staging.scan(LINKS_BY_RECORD, first, last)}
    ids: set[int] = set()
    emails: set[str] = set()
    claim = ctx.mapping.links.dynamics_marketo_id
    for item in ctx.staging.scan(RECORDS, first, last):
        row, entity = item.value["r"], item.value["e"]
        link = links.get(item.key)
        if link is not None:
            ids.add(int(link["m"]))
        named = str(row.get(claim) or "")
        if named.isdigit():
            ids.add(int(named))
        email = email_key(row.get(ctx.mapping.entity(entity).email.dynamics))
        if email:
            emails.add(email)
    fields = marketo_fields(ctx)
    found = ctx.marketo.get_leads_by_ids(sorted(ids), fields) if ids else []
    if emails:
        found += ctx.marketo.get_leads_by_filter("email", sorted(emails), fields)
    stage(ctx, person_items(ctx, found))
    job.count("persons_read", len(found))


def _records_of_persons(ctx: Context, job: JobState, first: int, last: int) -> None:
    """The records of the persons read whose record did not change: the one linked to each, the
    ones naming it by the stored Marketo id, the ones sharing its email (a person created while
    the poller was stopped, whose record was already there)."""
    persons = {i.key: i.value["p"] for i in ctx.staging.scan(PERSONS, first, last)}
    linked: dict[str, set[str]] = {entity: set() for entity in ENTITIES}
    for item in ctx.staging.scan(LINKS_BY_PERSON, first, last):
        if item.key in persons:
            linked[item.value["e"]].add(item.value["d"])
    emails = {key for p in persons.values() if (key := email_key(p.get("email")))}
    claim = ctx.mapping.links.dynamics_marketo_id
    for entity in ENTITIES:
        rows = _rows_where(ctx, entity, f"{entity}id", linked[entity])
        rows = chain(rows, _rows_where(ctx, entity, claim, persons))
        rows = chain(rows, _rows_where(ctx, entity, ctx.mapping.entity(entity).email.dynamics, emails))
        staged = list(record_items(entity, rows))
        stage(ctx, staged)  # a record found twice is staged once (by its key)
        job.count("records_read", len(staged))


def _rows_where(ctx: Context, entity: str, column: str, values: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The entity's rows whose ``column`` is one of ``values``, IDS_PER_QUERY values a query."""
    ordered = sorted(values)
    select = dynamics_select(ctx, entity)
    for start in range(0, len(ordered), IDS_PER_QUERY):
        clause = odata.in_(column, ordered[start : start + IDS_PER_QUERY])
        yield from ctx.dataverse.query(ENTITY_SETS[entity], select=select, filter=clause)
