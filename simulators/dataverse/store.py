"""Rows in memory, guarded by one lock, changed only inside transactions.

A transaction keeps an undo log, so a change set, a bulk message or a qualification that fails
half-way leaves nothing behind; the events it raised (for webhooks) are released only on commit.
Every write takes the next value of one global row-version counter (``versionnumber``, the ETag),
and deletes leave tombstones, which is what change tracking reads.

A million rows must not make a read slow (the initial sync pages through whole tables while the
ongoing sync keeps querying by id and email), so the store keeps, besides the rows, what a
database would: the ids of each table in key order (:class:`OrderedIds`, for keyset paging) and
value indexes on the columns mdsync looks rows up by (:data:`INDEXED_COLUMNS`), and when each
row was last modified (:class:`ModifiedIndex`, for the ``modifiedon ge`` questions of the sweep and
of the initial sync's guard, which a database answers from an index, not a scan).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from simulators.dataverse.faults import DUPLICATE_RECORD_ENTITY_KEY, DataverseFault
from simulators.dataverse.schema import Table

Row = dict[str, Any]

# Columns with a value index, per table: the ones mdsync filters on with eq / In() besides the
# primary key (which the rows dict is) and the alternate keys (which ``key_index`` is).
INDEXED_COLUMNS: dict[str, tuple[str, ...]] = {
    "lead": ("emailaddress1", "mdsync_marketoid"),
    "contact": ("emailaddress1", "mdsync_marketoid", "originatingleadid"),
}


class Ref(NamedTuple):
    """A lookup value: the target table and row id."""

    logical: str
    id: str


@dataclass
class Event:
    """A platform message raised by a write, for the webhook steps registered on it."""

    message: str  # Create, Update, Delete, Merge
    logical: str
    row_id: str
    submitted: tuple[str, ...]  # columns named in the request (filteringattributes match these)
    target: Row  # attributes of the Target entity
    pre: Row | None
    post: Row | None
    user_id: str
    correlation_id: str
    request_id: str
    key_attributes: dict[str, Any] = field(default_factory=dict)
    # Other InputParameters of the message (Merge: SubordinateId, UpdateContent, ...).
    inputs: dict[str, Any] = field(default_factory=dict)
    # The sdkmessageprocessingstep ids the request bypassed: those steps do not run for it.
    bypassed: frozenset[str] = frozenset()


class Store:
    def __init__(self, tables: dict[str, Table]) -> None:
        self.lock = threading.RLock()
        self.tables = tables
        self.rows: dict[str, dict[str, Row]] = {name: {} for name in tables}
        self.key_index: dict[tuple[str, str], dict[tuple[Any, ...], str]] = {}
        self.tombstones: dict[str, list[tuple[int, str]]] = {name: [] for name in tables}
        self.version = 1_000_000
        self.on_commit: Callable[[list[Event]], None] = lambda events: None
        self.ordered: dict[str, OrderedIds] = {name: OrderedIds() for name in tables}
        self.modified: dict[str, ModifiedIndex] = {name: ModifiedIndex() for name in tables}
        self.value_index: dict[str, dict[str, dict[Any, set[str]]]] = {
            name: {column: {} for column in INDEXED_COLUMNS.get(name, ()) if column in table.columns}
            for name, table in tables.items()
        }

    def next_version(self) -> int:
        with self.lock:
            self.version += 1
            return self.version

    def get(self, logical: str, row_id: str) -> Row | None:
        return self.rows[logical].get(row_id)

    def find_by_key(self, logical: str, key_name: str, values: tuple[Any, ...]) -> str | None:
        return self.key_index.get((logical, key_name), {}).get(_fold_key(values))

    def indexed(self, logical: str, column: str) -> bool:
        return column in self.value_index[logical]

    def find_by_value(self, logical: str, column: str, values: Iterable[Any]) -> set[str]:
        """Ids of the rows whose ``column`` equals one of ``values`` (case-insensitively; a
        lookup's value is the referenced id). Only for an :meth:`indexed` column."""
        index = self.value_index[logical][column]
        found: set[str] = set()
        for value in values:
            found.update(index.get(_fold(value), ()))
        return found

    def modified_since(self, logical: str, moment: datetime) -> set[str] | None:
        """Ids of the rows modified at or after ``moment`` (a superset: the caller checks each
        row), or None when that is most of the table and a scan is as cheap."""
        rows = self.rows[logical]
        found = self.modified[logical].since(moment, rows)
        return found if len(found) <= len(rows) // 8 else None

    def ordered_ids(self, logical: str) -> list[str]:
        """The table's row ids in key order (may name rows deleted since: skip those)."""
        return self.ordered[logical].ids(self.rows[logical])

    def _key_entries(self, logical: str, row: Row) -> list[tuple[str, tuple[Any, ...]]]:
        entries = []
        for name, columns in self.tables[logical].alternate_keys.items():
            values = tuple(row.get(c) for c in columns)
            if all(v is not None for v in values):
                entries.append((name, _fold_key(values)))
        return entries

    def index_row(self, logical: str, row_id: str, row: Row) -> None:
        """Add a row to the indexes of the table's keys (a key that has just become active)."""
        self._index(logical, row_id, row)

    def _index(self, logical: str, row_id: str, row: Row) -> None:
        for name, key in self._key_entries(logical, row):
            index = self.key_index.setdefault((logical, name), {})
            holder = index.get(key)
            if holder is not None and holder != row_id:
                columns = self.tables[logical].alternate_keys[name]
                raise DataverseFault(
                    412,
                    DUPLICATE_RECORD_ENTITY_KEY,
                    f"Entity Key {name} violated. A record with the same value for "
                    f"{', '.join(columns)} already exists. A duplicate record cannot be created. "
                    "Try modifying one or more values and then saving again.",
                )
            index[key] = row_id
        for column, values in self.value_index[logical].items():
            value = row.get(column)
            if value is not None:
                values.setdefault(_fold(value), set()).add(row_id)
        self.modified[logical].written(row_id, row.get("modifiedon"))

    def _unindex(self, logical: str, row_id: str, row: Row) -> None:
        for name, key in self._key_entries(logical, row):
            index = self.key_index.get((logical, name), {})
            if index.get(key) == row_id:
                del index[key]
        for column, values in self.value_index[logical].items():
            value = row.get(column)
            holders = values.get(_fold(value)) if value is not None else None
            if holders is not None:
                holders.discard(row_id)
                if not holders:
                    del values[_fold(value)]

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.lock:
            tx = Transaction(self)
            try:
                yield tx
            except BaseException:
                tx.rollback()
                raise
            events = tx.events
            tx.events = []
            # Deliveries are built under the lock, so they see the registrations of this moment.
            if events:
                self.on_commit(events)

    def clear(self) -> None:
        with self.lock:
            for name in self.rows:
                self.rows[name].clear()
                self.tombstones[name].clear()
            self.key_index.clear()
            for name in self.rows:
                self.ordered[name] = OrderedIds()
                self.modified[name] = ModifiedIndex()
                for values in self.value_index[name].values():
                    values.clear()


class Transaction:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.undo: list[Callable[[], None]] = []
        self.events: list[Event] = []

    def insert(self, logical: str, row: Row) -> None:
        table = self.store.tables[logical]
        row_id = row[table.primary_id]
        self.store._index(logical, row_id, row)
        self.store.rows[logical][row_id] = row
        self.store.ordered[logical].added(row_id)
        self.undo.append(lambda: self._remove(logical, row_id))

    def replace(self, logical: str, row: Row) -> None:
        table = self.store.tables[logical]
        row_id = row[table.primary_id]
        old = self.store.rows[logical][row_id]
        self.store._unindex(logical, row_id, old)
        try:
            self.store._index(logical, row_id, row)
        except DataverseFault:
            self.store._index(logical, row_id, old)
            raise
        self.store.rows[logical][row_id] = row
        self.undo.append(lambda: self._restore(logical, row_id, old))

    def delete(self, logical: str, row_id: str) -> None:
        old = self.store.rows[logical].pop(row_id)
        self.store._unindex(logical, row_id, old)
        self.store.ordered[logical].removed()
        stone = (self.store.next_version(), row_id)
        self.store.tombstones[logical].append(stone)

        def undo() -> None:
            self.store.tombstones[logical].remove(stone)
            self._restore(logical, row_id, old)

        self.undo.append(undo)

    def _remove(self, logical: str, row_id: str) -> None:
        row = self.store.rows[logical].pop(row_id, None)
        if row is not None:
            self.store._unindex(logical, row_id, row)
            self.store.ordered[logical].removed()

    def _restore(self, logical: str, row_id: str, row: Row) -> None:
        current = self.store.rows[logical].get(row_id)
        if current is not None:
            self.store._unindex(logical, row_id, current)
        else:
            self.store.ordered[logical].added(row_id)
        self.store.rows[logical][row_id] = row
        self.store._index(logical, row_id, row)

    def raise_event(self, event: Event) -> None:
        self.events.append(event)

    def rollback(self) -> None:
        for undo in reversed(self.undo):
            undo()
        self.undo.clear()
        self.events.clear()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Roll back only what happens inside (one operation of a batch change set)."""
        mark_undo, mark_events = len(self.undo), len(self.events)
        try:
            yield
        except BaseException:
            for undo in reversed(self.undo[mark_undo:]):
                undo()
            del self.undo[mark_undo:]
            del self.events[mark_events:]
            raise


class OrderedIds:
    """A table's row ids in key order, kept up to date lazily: a new id waits in a set until the
    next read merges it in (or re-sorts, after many), and a deleted id stays until a re-sort
    (readers skip ids with no row). So a million seeded rows are sorted once, not per page, and
    writes between pages cost a read almost nothing."""

    def __init__(self) -> None:
        self._sorted: list[str] | None = None
        self._pending: set[str] = set()
        self._stale = 0

    def added(self, row_id: str) -> None:
        if self._sorted is not None:
            self._pending.add(row_id)

    def removed(self) -> None:
        if self._sorted is not None:
            self._stale += 1

    def ids(self, rows: dict[str, Row]) -> list[str]:
        current = self._sorted
        if (
            current is None
            or len(self._pending) > max(1_000, len(current) // 20)
            or self._stale > len(current) // 4 + 1_000
        ):
            self._sorted = sorted(rows)
            self._pending.clear()
            self._stale = 0
            return self._sorted
        for row_id in self._pending:
            at = bisect_left(current, row_id)
            if at == len(current) or current[at] != row_id:
                current.insert(at, row_id)
        self._pending.clear()
        return current


class ModifiedIndex:
    """Each row's ``modifiedon``, in time order, kept up to date lazily: a write appends an
    entry, the next read sorts (timsort: the appended tail is one run, nearly free). An entry a
    later write made stale stays until the index is rebuilt from the rows (after it has grown to
    twice their number) and is skipped on the way: it no longer says when its row was modified."""

    def __init__(self) -> None:
        self._entries: list[tuple[datetime, str]] = []
        self._sorted = 0

    def written(self, row_id: str, modifiedon: Any) -> None:
        if isinstance(modifiedon, datetime):
            self._entries.append((modifiedon, row_id))

    def since(self, moment: datetime, rows: dict[str, Row]) -> set[str]:
        entries = self._entries
        if len(entries) > 2 * len(rows) + 1_000:
            entries = self._entries = [
                (r["modifiedon"], i) for i, r in rows.items() if isinstance(r.get("modifiedon"), datetime)
            ]
            self._sorted = 0
        if self._sorted < len(entries):
            entries.sort()
            self._sorted = len(entries)
        start = bisect_left(entries, (moment, ""))
        return {
            row_id
            for moment_written, row_id in entries[start:]
            if (row := rows.get(row_id)) is not None and row.get("modifiedon") == moment_written
        }


def _fold(value: Any) -> Any:
    # Comparisons follow the SQL collation (case-insensitive); a lookup compares by the id.
    if isinstance(value, Ref):
        return value.id
    return value.casefold() if isinstance(value, str) else value


def _fold_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # Key lookups follow the SQL collation: case-insensitive.
    return tuple(v.casefold() if isinstance(v, str) else v for v in values)
