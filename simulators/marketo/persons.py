"""The person database. Every write records the activities Marketo records for it.

New Lead (12) on create, one Change Data Value (13) per field whose value actually changed
(nothing when a value is written unchanged), Delete Lead (37) on delete, Merge Leads (32) on the
winner of a merge. ``Origin`` says who wrote: the REST API ("Web service API"), a Marketo user,
or a webhook response mapping.

Block Field Updates (Admin > Field Management) is kept per field as the set of input sources it
blocks: a write from a blocked source leaves a non-empty value as it is (an empty field is still
filled, as the documentation says), records nothing, and the write still answers ``updated``.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from simulators.marketo.activities import CHANGE_DATA_VALUE, DELETE_LEAD, MERGE_LEADS, NEW_LEAD, ActivityLog
from simulators.marketo.faults import MarketoFault
from simulators.marketo.fields import (
    FieldCatalog,
    FieldDef,
    Value,
    change_text,
    coerce,
    format_datetime,
    lookup_key,
)

Person = dict[str, Value]


@dataclass(frozen=True)
class Origin:
    source_type: str  # New Lead "Source Type"
    reason: str  # Change Data Value "Reason"
    source: str  # Change Data Value "Source"


API = Origin("Web service API", "Web service API", "Web service API")
USER = Origin("New person", "Changed by user", "Person Details Page")


@functools.cache
def _change_attributes(origin: Origin) -> tuple[dict[str, str], dict[str, str]]:
    """The Reason and Source attributes of an origin's Change Data Value activities: one pair
    shared by all of them (activities only ever copy them out), not a pair per activity."""
    return {"name": "Reason", "value": origin.reason}, {"name": "Source", "value": origin.source}


def webhook_origin(name: str) -> Origin:
    return Origin("Webhook", f"Webhook response mapping: {name}", "Call Webhook")


class PersonStore:
    def __init__(
        self, catalog: FieldCatalog, log: ActivityLog, clock: Callable[[], float], first_id: int
    ) -> None:
        self.catalog = catalog
        self.log = log
        self._clock = clock
        self._next_id = first_id
        self._persons: dict[int, Person] = {}
        # Field -> the input sources (Change Data Value "Source") whose updates it blocks.
        self.blocked: dict[str, frozenset[str]] = {}
        # Searchable field -> lookup key -> the person id (a set only when several share it), so
        # lookups do not scan every person and a million unique emails cost no million sets.
        self._index: dict[str, dict[Value, int | set[int]]] = {
            f.name: {} for f in catalog.fields if f.searchable and f.name != "id"
        }
        self._created = _CreatedOrder()

    # --- reading ---------------------------------------------------------------------------

    def get(self, lead_id: int) -> Person | None:
        return self._persons.get(lead_id)

    def all(self) -> list[Person]:
        return [dict(p) for _, p in sorted(self._persons.items())]

    def ids(self) -> list[int]:
        """Every person id, in id order."""
        return sorted(self._persons)

    def created_between(self, start: str, end: str) -> list[int]:
        """Ids of the persons whose ``createdAt`` is in [start, end] (Marketo datetime text,
        which sorts as it reads), in id order: what a bulk extract's createdAt filter selects."""
        return self._created.between(start, end, self._persons)

    def find(self, field: FieldDef, values: Iterable[Value]) -> list[Person]:
        """Persons whose ``field`` equals one of ``values``, in id order."""
        keys = {lookup_key(field, v) for v in values if v is not None}
        if field.name == "id":
            ids = {k for k in keys if isinstance(k, int) and k in self._persons}
        elif field.name in self._index:
            index = self._index[field.name]
            ids = set()
            for key in keys:
                ids.update(_holders(index.get(key)))
        else:
            ids = {
                i
                for i, p in self._persons.items()
                if p.get(field.name) is not None and lookup_key(field, p[field.name]) in keys
            }
        return [self._persons[i] for i in sorted(ids)]

    def _reindex(self, lead_id: int, name: str, old: Value, new: Value) -> None:
        index = self._index.get(name)
        if index is None:
            return
        field = self.catalog.require(name)
        if old is not None:
            _unfile(index, lookup_key(field, old), lead_id)
        if new is not None:
            _file(index, lookup_key(field, new), lead_id)

    def render(self, person: Person, fields: Iterable[str]) -> dict[str, Value]:
        return {name: person.get(name) for name in fields}

    # --- validation ------------------------------------------------------------------------

    def validate(self, values: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> Person:
        """The stored form of a record's values; the first problem raises its 1xxx fault."""
        clean: Person = {}
        for name, raw in values.items():
            if name in skip:
                continue
            field = self.catalog.require(name)
            if field.read_only:
                raise MarketoFault("1003", f"Field '{name}' is not updateable")
            clean[name] = coerce(field, raw)
        return clean

    # --- writing ---------------------------------------------------------------------------

    def create(self, values: Person, origin: Origin | None) -> int:
        """A new person; ``origin`` None seeds it silently (no New Lead activity)."""
        now = self._clock()
        lead_id = self._next_id
        self._next_id += 1
        person: Person = {f.name: None for f in self.catalog.fields}
        person.update(values)
        stamp = format_datetime(now)
        person.update(id=lead_id, createdAt=stamp, updatedAt=stamp, leadPartitionId=1)
        self._persons[lead_id] = person
        self._created.added(lead_id)
        for name in self._index:
            self._reindex(lead_id, name, None, person.get(name))
        if origin is not None:
            self.log.append(
                lead_id,
                NEW_LEAD,
                now,
                primary_attribute_value_id=lead_id,
                primary_attribute_value=_full_name(person),
                attributes=(
                    {"name": "Created Date", "value": stamp[:10]},
                    {"name": "Source Type", "value": origin.source_type},
                ),
            )
        return lead_id

    def update(self, lead_id: int, values: Person, origin: Origin) -> list[str]:
        """Write ``values``; returns the names of the fields whose value changed."""
        person = self._persons[lead_id]
        now = self._clock()
        changed = []
        for name, new in values.items():
            old = person.get(name)
            if old == new and type(old) is type(new):
                continue
            if old is not None and origin.source in self.blocked.get(name, frozenset()):
                continue  # Block Field Updates: the value stays, and nothing says so
            person[name] = new
            self._reindex(lead_id, name, old, new)
            changed.append(name)
            field = self.catalog.require(name)
            self.log.append(
                lead_id,
                CHANGE_DATA_VALUE,
                now,
                primary_attribute_value_id=field.field_id,
                primary_attribute_value=field.display_name,
                fields=(
                    {
                        "id": field.field_id,
                        "name": name,
                        "newValue": change_text(new),
                        "oldValue": change_text(old),
                    },
                ),
                attributes=(*_change_attributes(origin), {"name": "Lead ID", "value": lead_id}),
            )
        if changed:
            person["updatedAt"] = format_datetime(now)
        return changed

    def delete(self, lead_id: int) -> bool:
        person = self._persons.pop(lead_id, None)
        if person is None:
            return False
        for name in self._index:
            self._reindex(lead_id, name, person.get(name), None)
        self.log.append(
            lead_id,
            DELETE_LEAD,
            self._clock(),
            primary_attribute_value_id=lead_id,
            primary_attribute_value=_full_name(person),
        )
        return True

    def merge(self, winner: int, losers: list[int]) -> list[str]:
        """Merge ``losers`` into ``winner``: the winner keeps its values, an empty one takes the
        first loser's value ("some value is better than no value"); the losers' activities move
        to the winner, and the losers cease to exist. Returns the fields the winner took.

        Recorded: Merge Leads (32) on the winner (attributes "Merge IDs": the losers' ids,
        "Merge Fields": the fields taken), and a Delete Lead (37) for each loser, so Get Deleted
        Leads reports them (simulator choice: the documentation does not say whether it does)."""
        person = self._persons[winner]
        taken: list[str] = []
        for loser_id in losers:
            loser = self._persons[loser_id]
            for field in self.catalog.fields:
                if field.read_only or field.name in taken:
                    continue
                if person.get(field.name) is None and loser.get(field.name) is not None:
                    self._reindex(winner, field.name, None, loser[field.name])
                    person[field.name] = loser[field.name]
                    taken.append(field.name)
        now = self._clock()
        if taken:
            person["updatedAt"] = format_datetime(now)
        self.log.move(losers, winner)
        self.log.append(
            winner,
            MERGE_LEADS,
            now,
            primary_attribute_value_id=winner,
            primary_attribute_value=_full_name(person),
            attributes=(
                {"name": "Merge IDs", "value": ",".join(str(i) for i in losers)},
                {"name": "Merge Fields", "value": ",".join(taken)},
            ),
        )
        for loser_id in losers:
            self.delete(loser_id)
        return taken

    def clear(self) -> None:
        self._persons.clear()
        for index in self._index.values():
            index.clear()
        self._created = _CreatedOrder()


class _CreatedOrder:
    """(createdAt, id) of every person in order, kept lazily: new ids wait until the next read
    merges them in (or re-sorts, after many); deleted ids are skipped when read. A read reads
    ``createdAt`` from the person itself when it merges, so a seed may set it after create."""

    def __init__(self) -> None:
        self._sorted: list[tuple[str, int]] | None = None
        self._pending: list[int] = []

    def added(self, lead_id: int) -> None:
        if self._sorted is not None:
            self._pending.append(lead_id)

    def between(self, start: str, end: str, persons: Mapping[int, Person]) -> list[int]:
        entries = self._entries(persons)
        low = bisect.bisect_left(entries, (start, -1))
        high = bisect.bisect_right(entries, (end, float("inf")))
        return sorted(i for _, i in entries[low:high] if i in persons)

    def _entries(self, persons: Mapping[int, Person]) -> list[tuple[str, int]]:
        if self._sorted is None or len(self._pending) > max(1_000, len(self._sorted) // 20):
            self._sorted = sorted((str(p["createdAt"]), i) for i, p in persons.items())
            self._pending.clear()
            return self._sorted
        for lead_id in self._pending:
            person = persons.get(lead_id)
            if person is not None:
                bisect.insort(self._sorted, (str(person["createdAt"]), lead_id))
        self._pending.clear()
        return self._sorted


def _holders(entry: int | set[int] | None) -> set[int] | tuple[int, ...]:
    if entry is None:
        return ()
    return entry if isinstance(entry, set) else (entry,)


def _file(index: dict[Value, int | set[int]], key: Value, lead_id: int) -> None:
    entry = index.get(key)
    if entry is None:
        index[key] = lead_id
    elif isinstance(entry, set):
        entry.add(lead_id)
    elif entry != lead_id:
        index[key] = {entry, lead_id}


def _unfile(index: dict[Value, int | set[int]], key: Value, lead_id: int) -> None:
    entry = index.get(key)
    if entry == lead_id:
        del index[key]
    elif isinstance(entry, set):
        entry.discard(lead_id)
        if len(entry) == 1:
            index[key] = next(iter(entry))


def _full_name(person: Person) -> str:
    parts = [person.get("firstName"), person.get("lastName")]
    return " ".join(str(p) for p in parts if p) or str(person.get("id"))
