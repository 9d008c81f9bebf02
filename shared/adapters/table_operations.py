"""The console's records on Azure Table Storage, beside the state store's tables (and through the
same clients: ``TableStateStore``'s connection, retries and thread pool).

=========  ======================================  ============================================
table      PartitionKey                            RowKey
=========  ======================================  ============================================
tallies    ``h<yyyymmddHH>`` (the UTC hour)        ``entity|direction|name`` (escaped)
errors     the error's person: ``p<marketo id>``,   the error key (escaped)
           ``d<dynamics id>`` or ``x``
errors     ``t`` (the newest-first index)          inverted last-seen time + the key
audit      ``a<yyyymm>``                           inverted time + random
=========  ======================================  ============================================

A tally is a counter row updated under its etag. A batch's tallies of one hour are read in one
query and written in one transaction of conditional updates and creates (a lost race, any of
them, reads the partition's rows again and retries the whole). An error is a row in its
person's partition (so a person's errors are one query when they are resolved) and a copy in
the ``t`` partition ordered newest first, so a page of the error list is one range query
whatever the list holds. A worker batch resolves the errors
of the persons it synced: the ``t`` partition, read for that kind, says which of them have any
(one request while fewer than 1,000 are open), and only their partitions are read. Updating an
error moves its copy: the old copy is deleted after the new one is written; a crash in between
leaves a stale copy, which readers recognise (its time is not the row's) and skip. Counting
errors per reason has no index: ``error_groups`` reads the ``t`` partition's Kind, Reason and
time columns (1,000 rows a request), and the console caches the answer for a minute.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode

from shared.adapters._clock import from_micros, to_micros
from shared.adapters._table_keys import escape_key, newest_first
from shared.adapters._table_transactions import submit_transaction
from shared.adapters.sqlite_operations import decode_cursor, hour_of
from shared.adapters.table_state import OPS_PER_TRANSACTION, PAGE_ROWS, ROWS_PER_QUERY, TableStateStore
from shared.errors import ServiceUnavailableError
from shared.ports import (
    AuditEntry,
    ErrorGroup,
    ErrorPage,
    ErrorQuery,
    OperationsStore,
    SyncError,
    Tally,
)

log = logging.getLogger(__name__)

TABLES = ("tallies", "errors", "audit")
INDEX = "t"
_TALLY_ATTEMPTS = 8


def person_partition(error: SyncError) -> str:
    if error.marketo_id is not None:
        return f"p{error.marketo_id}"
    if error.dynamics_id:
        return "d" + escape_key(error.dynamics_id.lower())
    return "x"


def _index_row(last_us: int, key: str) -> str:
    return f"{newest_first(last_us, 0)}-{escape_key(key)}"


def _error_entity(error: SyncError) -> dict[str, Any]:
    assert error.first_seen is not None
    assert error.last_seen is not None
    return {
        "Key": error.key,
        "Kind": error.kind,
        "Reason": error.reason,
        "Message": error.message[:8000],
        "Entity": error.entity,
        "MarketoId": "" if error.marketo_id is None else str(error.marketo_id),
        "DynamicsId": error.dynamics_id or "",
        "DynamicsKey": (error.dynamics_id or "").lower(),
        "Field": error.field,
        "Value": error.value[:8000],
        "FirstUs": str(to_micros(error.first_seen)),
        "LastUs": str(to_micros(error.last_seen)),
        "Count": error.count,
        "ItemId": error.item_id,
        "Home": person_partition(error),
    }


def _from_entity(row: TableEntity | dict[str, Any]) -> SyncError:
    marketo = str(row.get("MarketoId") or "")
    return SyncError(
        key=str(row["Key"]),
        kind=str(row["Kind"]),
        reason=str(row["Reason"]),
        message=str(row.get("Message") or ""),
        entity=str(row.get("Entity") or ""),
        marketo_id=int(marketo) if marketo else None,
        dynamics_id=str(row.get("DynamicsId") or "") or None,
        field=str(row.get("Field") or ""),
        value=str(row.get("Value") or ""),
        first_seen=from_micros(int(row["FirstUs"])),
        last_seen=from_micros(int(row["LastUs"])),
        count=int(row.get("Count") or 1),
        item_id=str(row.get("ItemId") or ""),
    )


def _matches(error: SyncError, query: ErrorQuery) -> bool:
    """The filters the service cannot apply (person, field, text), applied to a page's rows."""
    if query.person:
        person = query.person.strip()
        wanted = str(error.marketo_id) if person.isdigit() else (error.dynamics_id or "").lower()
        if wanted != person.lower():
            return False
    if query.field and error.field.lower() != query.field.lower():
        return False
    if query.text:
        needle = query.text.lower()
        haystack = (error.reason, error.message, error.field, error.value)
        return any(needle in part.lower() for part in haystack)
    return True


def _service_filter(query: ErrorQuery) -> tuple[str, dict[str, Any]]:
    clauses = ["PartitionKey eq @p"]
    params: dict[str, Any] = {"p": INDEX}
    for name, value in (("Kind", query.kind), ("Reason", query.reason), ("Entity", query.entity)):
        if value:
            clauses.append(f"{name} eq @{name.lower()}")
            params[name.lower()] = value
    return " and ".join(clauses), params


class TableOperationsStore(OperationsStore):
    def __init__(self, tables: TableStateStore) -> None:
        self._tables = tables

    # --- tallies -------------------------------------------------------------------------------

    def add_tallies(self, tallies: Sequence[Tally]) -> None:
        """A batch's tallies, an hour's partition at a time: its rows read in one query and
        written in one transaction (conditional on the etags read; again on a conflict)."""
        by_partition: dict[str, dict[str, int]] = {}
        for t in tallies:
            if t.count:
                rows = by_partition.setdefault(f"h{hour_of(t.hour):%Y%m%d%H}", {})
                row = escape_key(f"{t.entity}|{t.direction}|{t.name}")
                rows[row] = rows.get(row, 0) + t.count
        calls = [
            partial(self._add_tallies, partition, dict(items[start : start + OPS_PER_TRANSACTION]))
            for partition, rows in by_partition.items()
            for items in [list(rows.items())]
            for start in range(0, len(items), OPS_PER_TRANSACTION)
        ]
        self._tables._parallel(calls)

    def _add_tallies(self, partition: str, counts: dict[str, int]) -> None:
        table = self._tables._table("tallies")
        for _ in range(_TALLY_ATTEMPTS):
            current = {
                str(e["RowKey"]): e
                for e in self._tables._rows_by_key("tallies", ((partition, r) for r in counts))
            }
            operations: list[Any] = []
            for row, count in counts.items():
                stored = current.get(row)
                if stored is None:
                    entity, direction, name = _unescape_tally(row)
                    fields = {"Entity": entity, "Direction": direction, "Name": name, "Count": count}
                    operations.append(("create", {"PartitionKey": partition, "RowKey": row, **fields}))
                else:
                    stored["Count"] = int(stored.get("Count") or 0) + count
                    etag = {"etag": stored.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
                    operations.append(("update", stored, {"mode": UpdateMode.REPLACE, **etag}))
            with self._tables._errors():
                try:
                    submit_transaction(table, operations)
                    return
                except TableTransactionError:
                    continue  # another batch added to one of them meanwhile: read again
        raise ServiceUnavailableError(f"tallies of {partition} kept changing under us", service="operations")

    def read_tallies(self, since: datetime) -> list[Tally]:
        rows = self._tables._query(
            "tallies",
            "PartitionKey ge @p and PartitionKey lt @end",
            {"p": f"h{hour_of(since):%Y%m%d%H}", "end": "i"},
        )
        found = []
        for row in rows:
            hour = datetime.strptime(str(row["PartitionKey"])[1:], "%Y%m%d%H").replace(tzinfo=since.tzinfo)
            found.append(
                Tally(hour, str(row["Entity"]), str(row["Direction"]), str(row["Name"]), int(row["Count"]))
            )
        return sorted(found, key=lambda t: t.hour)

    # --- errors --------------------------------------------------------------------------------

    def _current(self, errors: Iterable[SyncError]) -> dict[str, TableEntity]:
        keys = [(person_partition(e), escape_key(e.key)) for e in errors]
        return {str(row["Key"]): row for row in self._tables._rows_by_key("errors", keys)}

    def record_errors(self, errors: Sequence[SyncError]) -> None:
        if not errors:
            return
        latest: dict[str, SyncError] = {}
        for error in errors:
            seen = latest.get(error.key)
            latest[error.key] = error if seen is None else _merged(seen, error)
        current = self._current(latest.values())
        calls = [partial(self._record, e, current.get(e.key)) for e in latest.values()]
        self._tables._parallel(calls)

    def _record(self, error: SyncError, current: TableEntity | None) -> None:
        if current is not None:
            error = _merged(_from_entity(current), error)
        entity = _error_entity(error)
        table = self._tables._table("errors")
        last_us = to_micros(error.last_seen) if error.last_seen else 0
        with self._tables._errors():
            table.upsert_entity(
                {**entity, "PartitionKey": INDEX, "RowKey": _index_row(last_us, error.key)},
                mode=UpdateMode.REPLACE,
            )
            table.upsert_entity(
                {**entity, "PartitionKey": person_partition(error), "RowKey": escape_key(error.key)},
                mode=UpdateMode.REPLACE,
            )
            if current is not None and int(current["LastUs"]) != last_us:
                self._drop_index(int(current["LastUs"]), error.key)

    def _drop_index(self, last_us: int, key: str) -> None:
        table = self._tables._table("errors")
        with self._tables._errors():
            table.delete_entity(INDEX, _index_row(last_us, key))  # a missing row is fine

    def _delete(self, rows: Iterable[TableEntity]) -> int:
        table = self._tables._table("errors")
        removed = 0
        for row in rows:
            with self._tables._errors():
                table.delete_entity(row["PartitionKey"], row["RowKey"])
            self._drop_index(int(row["LastUs"]), str(row["Key"]))
            removed += 1
        return removed

    def resolve_errors(self, marketo_ids: Iterable[int], kinds: Iterable[str]) -> int:
        """A worker batch asks this for every person it synced, and few of them have errors: the
        index partition, read for these kinds (one request while they number under 1,000),
        says which; only those persons' partitions are read. When the index holds more of
        them than reading every person's partition would cost, every partition is read."""
        ids = list(dict.fromkeys(marketo_ids))
        wanted = list(dict.fromkeys(kinds))
        if not ids or not wanted:
            return 0
        queries = -(-len(ids) // ROWS_PER_QUERY)
        kind_ors = " or ".join(f"Kind eq @k{i}" for i in range(len(wanted)))
        params: dict[str, Any] = {f"k{i}": kind for i, kind in enumerate(wanted)} | {"t": INDEX}
        limit = queries * PAGE_ROWS
        indexed = self._tables._query("errors", f"PartitionKey eq @t and ( {kind_ors} )", params, limit)
        if len(indexed) < limit:
            asked = {str(m) for m in ids}
            ids = list(dict.fromkeys(int(m) for row in indexed if (m := str(row["MarketoId"])) in asked))
        partitions = [f"p{m}" for m in ids]
        calls = []
        for start in range(0, len(partitions), ROWS_PER_QUERY):
            chunk = partitions[start : start + ROWS_PER_QUERY]
            ors = " or ".join(f"PartitionKey eq @p{i}" for i in range(len(chunk)))
            calls.append(
                partial(
                    self._tables._query, "errors", f"( {ors} )", {f"p{i}": p for i, p in enumerate(chunk)}
                )
            )
        rows = [row for batch in self._tables._parallel(calls) for row in batch if row.get("Kind") in wanted]
        return self._delete(rows)

    def remove_errors(self, keys: Iterable[str]) -> None:
        found = self.get_errors(keys)
        rows = self._tables._rows_by_key(
            "errors", [(person_partition(e), escape_key(e.key)) for e in found.values()]
        )
        self._delete(rows)

    def get_errors(self, keys: Iterable[str]) -> dict[str, SyncError]:
        """By key alone (the person is not known): through the index, newest first."""
        wanted = set(keys)
        found: dict[str, SyncError] = {}
        if not wanted:
            return found
        for row in self._tables._query("errors", "PartitionKey eq @p", {"p": INDEX}):
            key = str(row["Key"])
            if key in wanted and key not in found:
                found[key] = _from_entity(row)
                if len(found) == len(wanted):
                    break
        return found

    def list_errors(self, query: ErrorQuery, *, cursor: str | None = None, limit: int = 100) -> ErrorPage:
        flt, params = _service_filter(query)
        if cursor:
            last_us, key = decode_cursor(cursor)
            flt += " and RowKey gt @after"
            params["after"] = _index_row(last_us, key)
        table = self._tables._table("errors")
        errors: list[SyncError] = []
        seen: set[str] = set()
        more = False
        with self._tables._errors():
            for row in table.query_entities(flt, parameters=params, results_per_page=max(limit, 100)):
                error = _from_entity(row)
                if error.key in seen or not _matches(error, query):
                    continue  # a stale copy left by a crash sorts after the fresh one
                if len(errors) == limit:
                    more = True
                    break
                seen.add(error.key)
                errors.append(error)
        next_cursor = (
            f"{to_micros(errors[-1].last_seen)}:{errors[-1].key}"
            if more and errors and errors[-1].last_seen
            else None
        )
        return ErrorPage(errors, next_cursor)

    def error_groups(self, query: ErrorQuery) -> list[ErrorGroup]:
        flt, params = _service_filter(query)
        table = self._tables._table("errors")
        groups: dict[tuple[str, str], list[int]] = {}
        seen: set[str] = set()
        with self._tables._errors():
            for row in table.query_entities(flt, parameters=params, results_per_page=1000):
                error = _from_entity(row)
                if error.key in seen or not _matches(error, query):
                    continue
                seen.add(error.key)
                entry = groups.setdefault((error.kind, error.reason), [0, 0])
                entry[0] += 1
                entry[1] = max(entry[1], int(row["LastUs"]))
        ordered = sorted(groups.items(), key=lambda item: (-item[1][0], -item[1][1]))
        return [ErrorGroup(kind, reason, n, from_micros(last)) for (kind, reason), (n, last) in ordered]

    # --- audit ---------------------------------------------------------------------------------

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        table = self._tables._table("audit")
        for entry in entries:
            at_us = to_micros(entry.at)
            with self._tables._errors():
                table.create_entity(
                    {
                        "PartitionKey": f"a{entry.at:%Y%m}",
                        "RowKey": f"{newest_first(at_us, 0)}-{uuid.uuid4().hex[:8]}",
                        "AtUs": str(at_us),
                        "Who": entry.who,
                        "Action": entry.action,
                        "Target": entry.target[:8000],
                        "Outcome": entry.outcome[:8000],
                    }
                )

    def read_audit(self, limit: int = 50) -> list[AuditEntry]:
        rows = self._tables._query("audit", "PartitionKey ge @p", {"p": "a"}, None)
        entries = [
            AuditEntry(
                from_micros(int(r["AtUs"])),
                str(r["Who"]),
                str(r["Action"]),
                str(r["Target"]),
                str(r["Outcome"]),
            )
            for r in rows
        ]
        return sorted(entries, key=lambda e: e.at, reverse=True)[:limit]

    def close(self) -> None:
        self._tables.close()


def _merged(old: SyncError, new: SyncError) -> SyncError:
    first = min(t for t in (old.first_seen, new.first_seen) if t is not None)
    last = max(t for t in (old.last_seen, new.last_seen) if t is not None)
    return replace(new, first_seen=first, last_seen=last, count=old.count + new.count)


def _unescape_tally(row: str) -> tuple[str, str, str]:
    text = unquote(row.replace("~", "%"))
    entity, direction, name = text.split("|", 2)
    return entity, direction, name
