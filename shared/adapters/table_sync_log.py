"""The sync log on Azure Table Storage: a table per UTC day, a few partitions per table, and
each entry stored under the person it is about, so that writing a batch is a few transactions,
a person's page is a few range queries, and retention is one request per expired day.

=================  =========================  ==================================================
table              PartitionKey               RowKey
=================  =========================  ==================================================
``<prefix>log``    ``s0`` .. ``s3``:          ``<person key>!<inverted time>-<sequence>-<rand>``
+ ``yyyymmdd``     a hash of the person key
=================  =========================  ==================================================

- The day is the day the entry was *written* (UTC), so expiring a day never loses a later
  write, whatever time an entry carries.
- The person key is ``m`` + the zero-padded Marketo id, or ``d`` + the escaped lower-case
  Dynamics id, or ``-`` for an entry about neither. An entry about both is stored twice, once
  under each key (an entry is found from either id, and the person's record outlives a deleted
  person); the two copies share their ``EntryId``, by which readers keep one.
- Writes: a batch's entities are grouped by partition, at most 100 per transaction, so a
  900-notice worker batch (1,800 entities) is about 20 transactions, where the layout before
  (a partition per person, per Dynamics record and per day) needed about 1,800.
- Reads of one person: per day table, one query over the RowKey range of the person's key
  (an index seek, not a scan), newest days first, a few days in parallel, until ``limit``.
  Reading without ids (an operator's or a test's view, not the console's) reads whole days.
- Retention: a day table is deleted once all of that day is older than the retention; deleting
  a table is one request, whatever it holds. The sync log of earlier releases, the one table
  ``<prefix>log``, is not read; it is deleted with the first day table that expires (everything
  in it was written before).

Four partitions per day keep a burst well under a partition's 2,000 entities per second; the
table per day keeps deletion cheap (a partition per day would need a delete per 100 entities).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from azure.data.tables import TableEntity

from shared.adapters._clock import from_micros, to_micros
from shared.adapters._table_keys import escape_key, join_text, marketo_row, newest_first, sized_text
from shared.errors import NotFoundError
from shared.ports import LogEntry

if TYPE_CHECKING:
    from shared.adapters.table_state import TableStateStore

LOG_SHARDS = 4
LEGACY_TABLE = "log"  # the sync log of earlier releases: a partition per person, record and day
NO_PERSON = "-"
_END = '"'  # the character after "!": the end of a person key's RowKey range


def log_table_kind(day: date) -> str:
    return f"log{day:%Y%m%d}"


def person_keys(marketo_id: int | None, dynamics_key: str | None) -> list[str]:
    keys = []
    if marketo_id is not None:
        keys.append("m" + marketo_row(marketo_id))
    if dynamics_key is not None:
        keys.append("d" + escape_key(dynamics_key))
    return keys or [NO_PERSON]


def shard(person_key: str) -> str:
    digest = hashlib.sha256(person_key.encode("utf-8")).digest()
    return f"s{digest[0] % LOG_SHARDS}"


class TableSyncLog:
    """The sync log's part of :class:`TableStateStore` (its tables, clock and thread pool)."""

    def __init__(self, store: TableStateStore) -> None:
        self._store = store
        self._day_table = re.compile(rf"^{re.escape(store.table_prefix)}log(\d{{8}})$")

    # --- writing -------------------------------------------------------------------------------

    def append(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        now_us = int(self._store._clock() * 1_000_000)
        kind = log_table_kind(from_micros(now_us).date())
        groups: dict[str, list[tuple[None, dict[str, Any]]]] = {}
        for sequence, entry in enumerate(entries):
            at_us = now_us if entry.at is None else to_micros(entry.at)
            entry_id = f"{newest_first(at_us, sequence)}-{uuid.uuid4().hex[:8]}"
            body = {**_body(entry, at_us), "EntryId": entry_id}
            dynamics = None if entry.dynamics_id is None else entry.dynamics_id.lower()
            for key in person_keys(entry.marketo_id, dynamics):
                entity = {**body, "PartitionKey": shard(key), "RowKey": f"{key}!{entry_id}"}
                groups.setdefault(entity["PartitionKey"], []).append((None, entity))
        self._store._submit_grouped(kind, groups)

    # --- reading -------------------------------------------------------------------------------

    def days(self) -> list[date]:
        """The days that have a log table, newest first."""
        prefix = self._store.table_prefix + "log"
        service = self._store.service()
        with self._store._errors():
            names = [
                t.name
                for t in service.query_tables(
                    "TableName ge @lo and TableName lt @hi",
                    parameters={"lo": prefix + "0", "hi": prefix + ":"},
                )
            ]
        found = []
        for name in names:
            match = self._day_table.match(name)
            if match:
                found.append(datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date())
        return sorted(found, reverse=True)

    def read(self, keys: Sequence[str], limit: int) -> list[TableEntity]:
        """Newest first, at most ``limit``, one copy of each entry."""
        found: dict[str, TableEntity] = {}
        days = self.days()
        wave = max(1, self._store._max_workers // max(1, len(keys)))
        for start in range(0, len(days), wave):
            calls = [
                partial(self._person_rows, day, key, limit)
                for day in days[start : start + wave]
                for key in keys
            ]
            for rows in self._store._parallel(calls):
                for row in rows:
                    found.setdefault(str(row["EntryId"]), row)
            if len(found) >= limit:
                break  # later waves hold only older days
        return [found[entry_id] for entry_id in sorted(found)[:limit]]

    def read_all(self, limit: int) -> list[TableEntity]:
        """Every person's entries, newest days first, until ``limit``."""
        found: dict[str, TableEntity] = {}
        for day in self.days():
            for row in self._day_rows(day):
                found.setdefault(str(row["EntryId"]), row)
            if len(found) >= limit:
                break
        return [found[entry_id] for entry_id in sorted(found)[:limit]]

    def _person_rows(self, day: date, key: str, limit: int) -> list[TableEntity]:
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        parameters = {"p": shard(key), "lo": key + "!", "hi": key + _END}
        kind = log_table_kind(day)
        return _missing_is_empty(lambda: self._store._query_existing(kind, query, parameters, limit))

    def _day_rows(self, day: date) -> list[TableEntity]:
        table = self._store._existing_table(log_table_kind(day))

        def read() -> list[TableEntity]:
            with self._store._errors():
                return list(table.list_entities(results_per_page=1000))

        return _missing_is_empty(read)

    # --- retention -----------------------------------------------------------------------------

    def expire(self, before: datetime) -> int:
        """Delete the day tables whose whole day is before ``before``; how many."""
        cutoff = to_micros(before)
        expired = [day for day in self.days() if _day_end_micros(day) <= cutoff]
        service = self._store.service()
        for day in expired:
            with self._store._errors():
                service.delete_table(self._store.table_prefix + log_table_kind(day))  # gone: fine
            self._store._forget_table(log_table_kind(day))
        if expired:
            # The one table of the layout before this one: everything in it was written before
            # the oldest day table, so it expires with it.
            with self._store._errors():
                service.delete_table(self._store.table_prefix + LEGACY_TABLE)
        return len(expired)


def _missing_is_empty(read: Callable[[], list[TableEntity]]) -> list[TableEntity]:
    try:
        return read()
    except NotFoundError:  # the day expired between the listing and the read
        return []


def _day_end_micros(day: date) -> int:
    return to_micros(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))


def _body(entry: LogEntry, at_us: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Entity": entry.entity,
        "Action": entry.action,
        "Fields": json.dumps(list(entry.fields)),
        "AtMicros": str(at_us),
        **sized_text("Detail", entry.detail, "a sync log detail"),
    }
    if entry.marketo_id is not None:
        body["MarketoId"] = str(entry.marketo_id)
    if entry.dynamics_id is not None:
        body["DynamicsId"] = entry.dynamics_id
    if entry.notice_id is not None:
        body["NoticeId"] = entry.notice_id
    if entry.values:
        body.update(sized_text("Values", json.dumps(entry.values), "a sync log entry's values"))
    return body


def entry_of(row: TableEntity) -> LogEntry:
    marketo_id = row.get("MarketoId")
    return LogEntry(
        marketo_id=None if marketo_id is None else int(marketo_id),
        dynamics_id=row.get("DynamicsId"),
        entity=str(row["Entity"]),
        action=str(row["Action"]),
        detail=join_text("Detail", row),
        fields=tuple(json.loads(row["Fields"])),
        at=from_micros(int(row["AtMicros"])),
        notice_id=row.get("NoticeId"),
        values=json.loads(join_text("Values", row)) if "ValuesChunks" in row else {},
    )
