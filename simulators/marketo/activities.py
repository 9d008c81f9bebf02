"""The instance-wide activity log and its paging tokens.

Activities are kept in insertion order; a paging token is a position in that order plus the
``sinceDatetime`` it started from, base32-encoded like Marketo's opaque tokens. Every
activity read (Get Lead Changes, Get Deleted Leads, Get Lead Activities) pages the same log
with its own filter, and always answers ``nextPageToken`` and ``moreResult``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from simulators.marketo.faults import MarketoFault
from simulators.marketo.fields import format_datetime

NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
MERGE_LEADS = 32
DELETE_LEAD = 37
CALL_WEBHOOK = 110

STANDARD_TYPES: tuple[dict[str, Any], ...] = (
    {
        "id": 1,
        "name": "Visit Webpage",
        "description": "User visits a web page",
        "primaryAttribute": {"name": "Webpage ID", "dataType": "integer"},
        "attributes": [{"name": "Query Parameters", "dataType": "string"}],
    },
    {
        "id": 2,
        "name": "Fill Out Form",
        "description": "User fills out and submits form on web page",
        "primaryAttribute": {"name": "Webform ID", "dataType": "integer"},
        "attributes": [{"name": "Form Fields", "dataType": "text"}],
    },
    {
        "id": NEW_LEAD,
        "name": "New Lead",
        "description": "New person",
        "primaryAttribute": {"name": "Lead ID", "dataType": "integer"},
        "attributes": [
            {"name": "Created Date", "dataType": "date"},
            {"name": "Source Type", "dataType": "string"},
        ],
    },
    {
        "id": CHANGE_DATA_VALUE,
        "name": "Change Data Value",
        "description": "Changed attribute value for a person",
        "primaryAttribute": {"name": "Attribute Name", "dataType": "integer"},
        "attributes": [
            {"name": "New Value", "dataType": "string"},
            {"name": "Old Value", "dataType": "string"},
            {"name": "Reason", "dataType": "string"},
            {"name": "Source", "dataType": "string"},
        ],
    },
    {
        "id": MERGE_LEADS,
        "name": "Merge Leads",
        "description": "Merge two or more persons",
        "primaryAttribute": {"name": "Lead ID", "dataType": "integer"},
        "attributes": [
            {"name": "Merge IDs", "dataType": "string"},
            {"name": "Merge Fields", "dataType": "string"},
        ],
    },
    {
        "id": DELETE_LEAD,
        "name": "Delete Lead",
        "description": "Delete person",
        "primaryAttribute": {"name": "Lead ID", "dataType": "integer"},
        "attributes": [],
    },
    {
        "id": CALL_WEBHOOK,
        "name": "Call Webhook",
        "description": "Call a webhook",
        "primaryAttribute": {"name": "Webhook ID", "dataType": "integer"},
        "attributes": [
            {"name": "Error Type", "dataType": "string"},
            {"name": "Response", "dataType": "text"},
        ],
    },
)


@dataclass(frozen=True, slots=True)
class Activity:
    seq: int
    activity_id: int
    lead_id: int
    type_id: int
    at: float
    primary_attribute_value_id: int | None = None
    primary_attribute_value: str | None = None
    fields: tuple[dict[str, Any], ...] = ()
    attributes: tuple[dict[str, Any], ...] = field(default=())

    @property
    def guid(self) -> str:
        return str(self.activity_id)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.activity_id,
            "marketoGUID": self.guid,
            "leadId": self.lead_id,
            "activityDate": format_datetime(self.at),
            "activityTypeId": self.type_id,
        }
        if self.primary_attribute_value_id is not None:
            body["primaryAttributeValueId"] = self.primary_attribute_value_id
        if self.primary_attribute_value is not None:
            body["primaryAttributeValue"] = self.primary_attribute_value
        if self.fields:
            body["fields"] = [dict(f) for f in self.fields]
        body["attributes"] = [dict(a) for a in self.attributes]
        return body


@dataclass(frozen=True)
class Cursor:
    position: int
    since: float

    def encode(self) -> str:
        raw = f"mkto:{self.position}:{self.since:.3f}".encode()
        return base64.b32encode(raw).decode("ascii")

    @staticmethod
    def decode(token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 8)
            kind, position, since = base64.b32decode(padded).decode("ascii").split(":")
            if kind != "mkto":
                raise ValueError(kind)
            return Cursor(int(position), float(since))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise MarketoFault("1003", "Invalid nextPageToken") from None


@dataclass(frozen=True)
class Page:
    activities: list[Activity]
    next_cursor: Cursor
    more: bool


class ActivityLog:
    """Append-only log of every activity in the instance (REST writes, user edits, webhooks)."""

    def __init__(
        self, first_id: int = 900_001, *, observer: Callable[[Activity], None] | None = None
    ) -> None:
        self._items: list[Activity] = []
        self._first_id = first_id
        # Told of every activity as it is recorded (the trigger campaigns listen).
        self._observer = observer

    def __len__(self) -> int:
        return len(self._items)

    def since(self, count: int) -> list[Activity]:
        """The activities recorded after the first ``count``, oldest first."""
        return self._items[count:]

    def append(self, lead_id: int, type_id: int, at: float, **details: Any) -> Activity:
        seq = len(self._items)
        item = Activity(seq, self._first_id + seq, lead_id, type_id, at, **details)
        self._items.append(item)
        if self._observer is not None:
            self._observer(item)
        return item

    def move(self, from_leads: list[int], to_lead: int) -> None:
        """A merge combines the activity logs: the losers' activities now belong to the winner."""
        moved = set(from_leads)
        for index, item in enumerate(self._items):
            if item.lead_id in moved:
                self._items[index] = replace(item, lead_id=to_lead)

    def for_lead(self, lead_id: int, type_ids: frozenset[int] | None = None) -> list[Activity]:
        return [
            a for a in self._items if a.lead_id == lead_id and (type_ids is None or a.type_id in type_ids)
        ]

    def page(
        self,
        cursor: Cursor,
        match: Callable[[Activity], bool],
        *,
        batch_size: int,
        scan_limit: int = 0,
    ) -> Page:
        """Up to ``batch_size`` matching activities from ``cursor`` on; at most ``scan_limit``
        positions are examined (0 = no limit), which is how short pages with more to come arise."""
        found: list[Activity] = []
        position = cursor.position
        end = len(self._items)
        scanned = 0
        while position < end and len(found) < batch_size:
            if scan_limit and scanned >= scan_limit:
                break
            item = self._items[position]
            position += 1
            scanned += 1
            if item.at >= cursor.since and match(item):
                found.append(item)
        return Page(found, Cursor(position, cursor.since), more=position < end)
