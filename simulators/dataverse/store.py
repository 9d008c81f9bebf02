"""Rows in memory, guarded by one lock, changed only inside transactions.

A transaction keeps an undo log, so a change set, a bulk message or a qualification that fails
half-way leaves nothing behind; the events it raised (for webhooks) are released only on commit.
Every write takes the next value of one global row-version counter (``versionnumber``, the ETag),
and deletes leave tombstones, which is what change tracking reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from simulators.dataverse.faults import DUPLICATE_RECORD_ENTITY_KEY, DataverseFault
from simulators.dataverse.schema import Table

Row = dict[str, Any]


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


class Store:
    def __init__(self, tables: dict[str, Table]) -> None:
        self.lock = threading.RLock()
        self.tables = tables
        self.rows: dict[str, dict[str, Row]] = {name: {} for name in tables}
        self.key_index: dict[tuple[str, str], dict[tuple[Any, ...], str]] = {}
        self.tombstones: dict[str, list[tuple[int, str]]] = {name: [] for name in tables}
        self.version = 1_000_000
        self.on_commit: Callable[[list[Event]], None] = lambda events: None

    def next_version(self) -> int:
        with self.lock:
            self.version += 1
            return self.version

    def get(self, logical: str, row_id: str) -> Row | None:
        return self.rows[logical].get(row_id)

    def find_by_key(self, logical: str, key_name: str, values: tuple[Any, ...]) -> str | None:
        return self.key_index.get((logical, key_name), {}).get(_fold_key(values))

    def _key_entries(self, logical: str, row: Row) -> list[tuple[str, tuple[Any, ...]]]:
        entries = []
        for name, columns in self.tables[logical].alternate_keys.items():
            values = tuple(row.get(c) for c in columns)
            if all(v is not None for v in values):
                entries.append((name, _fold_key(values)))
        return entries

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

    def _unindex(self, logical: str, row_id: str, row: Row) -> None:
        for name, key in self._key_entries(logical, row):
            index = self.key_index.get((logical, name), {})
            if index.get(key) == row_id:
                del index[key]

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

    def _restore(self, logical: str, row_id: str, row: Row) -> None:
        current = self.store.rows[logical].get(row_id)
        if current is not None:
            self.store._unindex(logical, row_id, current)
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


def _fold_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # Key lookups follow the SQL collation: case-insensitive.
    return tuple(v.casefold() if isinstance(v, str) else v for v in values)
