"""Bulk reads for the worker: whole batches of persons and rows, never one call per person.

A key the service could not be asked for (set aside because it cannot be sent, or refused alone
when the call was split, see ``split``) comes back in ``Read.refused`` with why, so the caller
reports that one record and reads the rest. A read that fails for any other reason raises, and
the batch waits (transient) or is parked (a permission), as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.mapping import FieldMapping
from shared.marketo.client import MarketoClient
from shared.marketo.filters import unsendable
from shared.redaction import mask_email
from shared.sync.split import Refusal, first_failure, send_split
from shared.sync.validation import Column

K = TypeVar("K")
V = TypeVar("V")
Row = dict[str, Any]


@dataclass
class Read(Generic[K, V]):
    """What a bulk read found, and the keys it could not ask for, each with why."""

    found: dict[K, V] = field(default_factory=dict)
    refused: dict[K, Refusal] = field(default_factory=dict)


def _read_split(keys: Sequence[K], call: Callable[[list[K]], Iterable[Row]], read: Read[K, V]) -> list[Row]:
    """The rows for ``keys``, splitting a call refused for its content; the keys refused alone
    go to ``read.refused``. Any other failure raises."""
    pieces = send_split(keys, lambda chunk: list(call(chunk)))
    failure = first_failure(pieces)
    if failure is not None:
        raise failure
    rows: list[Row] = []
    for piece in pieces:
        if piece.answer is not None:
            rows += piece.answer
        elif piece.error is not None:  # refused alone, or together once the split budget was spent
            for key in piece.items:
                read.refused[key] = Refusal.of(piece.error)
    return rows


ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
# GUIDs per $filter: about 40 characters each keeps the URL near 10 KB, well inside the limit.
IDS_PER_QUERY = 250


class MarketoReader:
    def __init__(self, marketo: MarketoClient, mapping: FieldMapping) -> None:
        self.marketo = marketo
        self.fields = mapping.marketo_fields()

    def by_ids(self, ids: Iterable[int]) -> Read[int, Row]:
        read: Read[int, Row] = Read()
        wanted = sorted(set(ids))
        for marketo_id in wanted:
            if why := unsendable("id", str(marketo_id)):
                read.refused[marketo_id] = Refusal.unsendable(f"Marketo id {marketo_id} {why}")
        asked = [i for i in wanted if i not in read.refused]
        for person in _read_split(
            asked, lambda chunk: self.marketo.get_leads_by_ids(chunk, self.fields), read
        ):
            read.found[int(person["id"])] = person
        return read

    def by_emails(self, emails: Iterable[str]) -> Read[str, list[Row]]:
        """Persons by email (lower-cased email -> its persons). An email Marketo's filter cannot
        carry is never sent: a comma in it would look up two addresses, perhaps another
        person's record."""
        read: Read[str, list[Row]] = Read()
        wanted = sorted({e.lower() for e in emails if e})
        for email in wanted:
            if why := unsendable("email", email):
                read.refused[email] = Refusal.unsendable(f"email {mask_email(email)} {why}")
        asked = [e for e in wanted if e not in read.refused]
        lookup = lambda chunk: self.marketo.get_leads_by_filter("email", chunk, self.fields)  # noqa: E731
        for person in _read_split(asked, lookup, read):
            read.found.setdefault(str(person.get("email") or "").lower(), []).append(person)
        return read


class DynamicsReader:
    def __init__(self, dataverse: DataverseClient, mapping: FieldMapping) -> None:
        self.dataverse = dataverse
        self.mapping = mapping
        self._columns: dict[str, Mapping[str, Column]] = {}
        self._lock = threading.Lock()
        self._own_user: str | None = None

    def select(self, entity: str) -> list[str]:
        extra = {f"{entity}id", "modifiedon", "versionnumber", "statecode", "_modifiedby_value"}
        if entity == "contact":
            extra.add("_originatingleadid_value")
        return sorted(set(self.mapping.dynamics_columns(entity)) | extra)

    def _in(self, entity_set: str, entity: str, column: str) -> Callable[[list[str]], list[Row]]:
        def query(chunk: list[str]) -> list[Row]:
            rows: list[Row] = []
            for start in range(0, len(chunk), IDS_PER_QUERY):
                clause = odata.in_(column, chunk[start : start + IDS_PER_QUERY])
                rows += self.dataverse.query(entity_set, select=self.select(entity), filter=clause)
            return rows

        return query

    def _by_guids(self, entity_set: str, entity: str, column: str, ids: Iterable[str]) -> Read[str, Row]:
        """Rows whose ``column`` is one of ``ids`` (lower-cased id -> row); an id that is not a
        GUID would make Dataverse refuse the whole query, so it is set aside."""
        read: Read[str, Row] = Read()
        wanted = sorted({i.lower() for i in ids})
        for record_id in wanted:
            if not odata.is_guid(record_id):
                read.refused[record_id] = Refusal.unsendable(f"{entity} id {record_id!r} is not a GUID")
        asked = [i for i in wanted if i not in read.refused]
        for row in _read_split(asked, self._in(entity_set, entity, column), read):
            read.found[str(row[column]).lower()] = row
        return read

    def by_ids(self, entity: str, ids: Iterable[str]) -> Read[str, Row]:
        return self._by_guids(ENTITY_SETS[entity], entity, f"{entity}id", ids)

    def by_originating_lead(self, lead_ids: Iterable[str]) -> Read[str, Row]:
        return self._by_guids("contacts", "contact", "_originatingleadid_value", lead_ids)

    def unlinked_by_email(self, entity: str, emails: Iterable[str]) -> Read[str, Row]:
        """Open, unlinked rows with these email addresses (lower-cased email -> the oldest row)."""
        read: Read[str, Row] = Read()
        wanted = sorted({e.lower() for e in emails if e})
        link_column = self.mapping.links.dynamics_marketo_id

        def query(chunk: list[str]) -> list[Row]:
            rows: list[Row] = []
            for start in range(0, len(chunk), IDS_PER_QUERY):
                clause = odata.and_(
                    odata.in_("emailaddress1", chunk[start : start + IDS_PER_QUERY]),
                    odata.eq(link_column, None),
                    odata.eq("statecode", 0),
                )
                rows += self.dataverse.query(
                    ENTITY_SETS[entity], select=self.select(entity), filter=clause, orderby="createdon asc"
                )
            return rows

        for row in _read_split(wanted, query, read):
            read.found.setdefault(str(row.get("emailaddress1") or "").lower(), row)
        return read

    def own_user_id(self) -> str:
        """The systemuserid mdsync writes as (WhoAmI, once per process)."""
        with self._lock:
            if self._own_user is None:
                self._own_user = self.dataverse.whoami().lower()
            return self._own_user

    def columns(self, entity: str) -> Mapping[str, Column]:
        """The table's column metadata, read once per process (it changes with customisation)."""
        with self._lock:
            if entity not in self._columns:
                self._columns[entity] = self.dataverse.entity_metadata(entity).attributes
            return self._columns[entity]
