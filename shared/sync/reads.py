"""Bulk reads for the worker: whole batches of persons and rows, never one call per person.

A key the service could not be asked for (set aside because it cannot be sent, or refused alone
when the call was split, see ``split``) comes back in ``Read.refused`` with why, so the caller
reports that one record and reads the rest. A read that fails for any other reason raises, and
the batch waits (transient) or is parked (a permission), as before.

Metadata is read once per process and cached: Dataverse column metadata (validation, date
behaviours: :meth:`DynamicsReader.entity` is the mapping with them bound), the organization's
currencies (only when a money field is mapped), and Marketo's field lengths (Describe, only when
a value longer than any String field holds is about to be sent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.dataverse.odata import ENTITY_SETS
from shared.mapping import EntityMapping, FieldMapping, FieldType, bind_dates, date_behavior
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


# GUIDs per $filter: about 40 characters each keeps the URL near 10 KB, well inside the limit.
IDS_PER_QUERY = 250


# Marketo's String fields hold 255 characters; longer types (Text Area) more. A value no
# longer than this fits every text field, so Describe is read only for a longer one.
MARKETO_STRING_LENGTH = 255
DATE_TYPES = (FieldType.DATE, FieldType.DATETIME)
QUALIFIED = 1  # a lead's statecode once it is qualified into a contact


class MarketoReader:
    def __init__(self, marketo: MarketoClient, mapping: FieldMapping) -> None:
        self.marketo = marketo
        self.fields = mapping.marketo_fields()
        self._lengths: dict[str, int | None] | None = None
        self._lock = threading.Lock()

    def length(self, name: str) -> int | None:
        """The most characters the field holds (Describe Lead, read once per process)."""
        with self._lock:
            if self._lengths is None:
                self._lengths = {f.name: f.length for f in self.marketo.describe_leads()}
            return self._lengths.get(name)

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
        self._entities: dict[str, EntityMapping] = {}
        self._currencies: dict[str, str] | None = None

    def select(self, entity: str) -> list[str]:
        extra = {
            f"{entity}id",
            "modifiedon",
            "versionnumber",
            "statecode",
            "_modifiedby_value",
            "_masterid_value",  # a record merged into another (Merge) names it here
        }
        if entity == "contact":
            extra.add("_originatingleadid_value")
        if any(f.type is FieldType.MONEY for f in self.mapping.entity(entity).fields):
            extra.add("_transactioncurrencyid_value")
        return sorted(set(self.mapping.dynamics_columns(entity)) | extra)

    def entity(self, name: str) -> EntityMapping:
        """The entity's mapping with each date field's DateTimeBehavior (from the column
        metadata) and time zone bound in; the metadata is read only when a date is mapped."""
        mapping = self.mapping.entity(name)
        if not any(f.type in DATE_TYPES for f in mapping.fields):
            return mapping
        with self._lock:
            bound = self._entities.get(name)
        if bound is None:
            columns = self.columns(name)
            behaviors = {
                c.logical_name: date_behavior(getattr(c, "date_behavior", None)) for c in columns.values()
            }
            bound = bind_dates(mapping, behaviors, self.mapping.options.time_zone)
            with self._lock:
                self._entities[name] = bound
        return bound

    def currencies(self) -> dict[str, str]:
        """The organization's currencies: transactioncurrencyid -> ISO code (read once)."""
        with self._lock:
            if self._currencies is not None:
                return self._currencies
        rows = self.dataverse.query(
            "transactioncurrencies", select=["transactioncurrencyid", "isocurrencycode"]
        )
        found = {str(r["transactioncurrencyid"]).lower(): str(r.get("isocurrencycode") or "") for r in rows}
        with self._lock:
            self._currencies = found
        return found

    def currency_codes(self) -> list[str]:
        """The ISO codes of the organization's currencies when the mapping has a money field (the
        field check compares them with the mapping's); none read otherwise."""
        entities = (self.mapping.lead, self.mapping.contact)
        mapped = any(f.type is FieldType.MONEY for e in entities for f in e.fields)
        return sorted(set(self.currencies().values())) if mapped else []

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
