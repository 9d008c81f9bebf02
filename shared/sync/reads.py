"""Bulk reads for the worker: whole batches of persons and rows, never one call per person.

Metadata is read once per process and cached: Dataverse column metadata (validation, date
behaviours: :meth:`DynamicsReader.entity` is the mapping with them bound), the organization's
currencies (only when a money field is mapped), and Marketo's field lengths (Describe, only when
a value longer than any String field holds is about to be sent).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.mapping import EntityMapping, FieldMapping, FieldType, bind_dates, date_behavior
from shared.marketo.client import MarketoClient
from shared.sync.validation import Column

ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
# GUIDs per $filter: about 40 characters each keeps the URL near 10 KB, well inside the limit.
IDS_PER_QUERY = 250


# Marketo's String fields hold 255 characters; longer types (Text Area) more. A value no
# longer than this fits every text field, so Describe is read only for a longer one.
MARKETO_STRING_LENGTH = 255
DATE_TYPES = (FieldType.DATE, FieldType.DATETIME)


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

    def by_ids(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        return {int(p["id"]): p for p in self.marketo.get_leads_by_ids(wanted, self.fields)}

    def by_emails(self, emails: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        wanted = sorted({e.lower() for e in emails if e})
        if wanted:
            for person in self.marketo.get_leads_by_filter("email", wanted, self.fields):
                found.setdefault(str(person.get("email") or "").lower(), []).append(person)
        return found


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

    def by_ids(self, entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        key = f"{entity}id"
        wanted = sorted({i.lower() for i in ids})
        rows: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_PER_QUERY):
            chunk = wanted[start : start + IDS_PER_QUERY]
            for row in self.dataverse.query(
                ENTITY_SETS[entity], select=self.select(entity), filter=odata.in_(key, chunk)
            ):
                rows[str(row[key]).lower()] = row
        return rows

    def by_originating_lead(self, lead_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted({i.lower() for i in lead_ids})
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_PER_QUERY):
            chunk = wanted[start : start + IDS_PER_QUERY]
            for row in self.dataverse.query(
                "contacts", select=self.select("contact"), filter=odata.in_("_originatingleadid_value", chunk)
            ):
                found[str(row["_originatingleadid_value"]).lower()] = row
        return found

    def unlinked_by_email(self, entity: str, emails: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Open, unlinked rows with these email addresses (lower-cased email -> the oldest row)."""
        wanted = sorted({e.lower() for e in emails if e})
        found: dict[str, dict[str, Any]] = {}
        link_column = self.mapping.links.dynamics_marketo_id
        for start in range(0, len(wanted), IDS_PER_QUERY):
            chunk = wanted[start : start + IDS_PER_QUERY]
            clause = odata.and_(
                odata.in_("emailaddress1", chunk), odata.eq(link_column, None), odata.eq("statecode", 0)
            )
            rows = self.dataverse.query(
                ENTITY_SETS[entity], select=self.select(entity), filter=clause, orderby="createdon asc"
            )
            for row in rows:
                found.setdefault(str(row.get("emailaddress1") or "").lower(), row)
        return found

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
