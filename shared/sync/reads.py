"""Bulk reads for the worker: whole batches of persons and rows, never one call per person."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.mapping import FieldMapping
from shared.marketo.client import MarketoClient
from shared.sync.validation import Column

ENTITY_SETS = {"lead": "leads", "contact": "contacts"}
# GUIDs per $filter: about 40 characters each keeps the URL near 10 KB, well inside the limit.
IDS_PER_QUERY = 250


class MarketoReader:
    def __init__(self, marketo: MarketoClient, mapping: FieldMapping) -> None:
        self.marketo = marketo
        self.fields = mapping.marketo_fields()

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

    def select(self, entity: str) -> list[str]:
        extra = {f"{entity}id", "modifiedon", "versionnumber", "statecode", "_modifiedby_value"}
        if entity == "contact":
            extra.add("_originatingleadid_value")
        return sorted(set(self.mapping.dynamics_columns(entity)) | extra)

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
