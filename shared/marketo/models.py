"""The typed values the Marketo client returns and accepts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Reason:
    """Why a record was skipped: Marketo's record-level code (``"1004"``) and message."""

    code: str
    message: str

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> Reason:
        return Reason(str(raw.get("code", "")), str(raw.get("message", "")))


@dataclass(frozen=True)
class PushResult:
    """One input record's outcome, in input order: ``created``/``updated``/``deleted`` with the
    person id, or ``skipped`` with reasons (and no id)."""

    status: str
    id: int | None = None
    reasons: tuple[Reason, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status != "skipped"

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> PushResult:
        reasons = tuple(Reason.from_json(r) for r in raw.get("reasons") or raw.get("errors") or ())
        status = str(raw.get("status") or ("skipped" if reasons else "unknown"))
        lead_id = raw.get("id")
        return PushResult(status, int(lead_id) if lead_id is not None else None, reasons)


@dataclass(frozen=True)
class FieldDescription:
    """One person field from Describe Lead: REST name, display name (``{{lead.<display>}}``
    tokens), SOAP name (webhook response mappings), type, length, and whether REST may write it."""

    name: str
    display_name: str
    data_type: str
    length: int | None
    updateable: bool
    soap_name: str | None
    field_id: int | None = None


@dataclass(frozen=True)
class Activity:
    """One activity. ``fields`` and ``attributes`` are Marketo's own objects
    (``{"name", "newValue", "oldValue"}`` and ``{"name", "value"}``). Dedupe on ``marketo_guid``:
    ``id`` may be absent or repeated since the Activity Service migration."""

    marketo_guid: str
    lead_id: int
    activity_date: datetime
    activity_type_id: int
    id: int | None = None
    primary_attribute_value_id: int | None = None
    primary_attribute_value: str | None = None
    campaign_id: int | None = None
    fields: tuple[Mapping[str, Any], ...] = ()
    attributes: tuple[Mapping[str, Any], ...] = ()

    def attribute(self, name: str) -> Any:
        return next((a.get("value") for a in self.attributes if a.get("name") == name), None)

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> Activity:
        return Activity(
            marketo_guid=str(raw.get("marketoGUID") or raw.get("id")),
            lead_id=int(raw["leadId"]),
            activity_date=parse_datetime(str(raw["activityDate"])),
            activity_type_id=int(raw["activityTypeId"]),
            id=_optional_int(raw.get("id")),
            primary_attribute_value_id=_optional_int(raw.get("primaryAttributeValueId")),
            primary_attribute_value=_optional_str(raw.get("primaryAttributeValue")),
            campaign_id=_optional_int(raw.get("campaignId")),
            fields=tuple(raw.get("fields") or ()),
            attributes=tuple(raw.get("attributes") or ()),
        )


@dataclass(frozen=True)
class ActivityPage:
    """One page of an activity read. Call again with ``next_page_token`` while ``more_result``;
    a page may be short, even empty, and still have more after it."""

    activities: tuple[Activity, ...]
    next_page_token: str | None
    more_result: bool


@dataclass(frozen=True)
class CustomActivityTypeSpec:
    """A custom activity type mdsync needs. ``primary_attribute`` is (apiName, display name);
    each of ``attributes`` is (apiName, display name, dataType)."""

    api_name: str
    name: str
    trigger_name: str
    filter_name: str
    primary_attribute: tuple[str, str]
    attributes: tuple[tuple[str, str, str], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class CustomActivityType:
    id: int
    api_name: str
    name: str
    status: str  # draft | approved | approved with draft
    primary_attribute: str
    attributes: tuple[str, ...] = field(default=())

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> CustomActivityType:
        primary = raw.get("primaryAttribute") or {}
        return CustomActivityType(
            id=int(raw["id"]),
            api_name=str(raw["apiName"]),
            name=str(raw.get("name", "")),
            status=str(raw.get("status", "")),
            primary_attribute=str(primary.get("apiName", "")),
            attributes=tuple(str(a["apiName"]) for a in raw.get("attributes") or () if "apiName" in a),
        )


@dataclass(frozen=True)
class CustomActivityResult:
    """``added`` with the activity's id/GUID, or ``skipped`` with reasons (1004 unknown person)."""

    status: str
    id: int | None = None
    marketo_guid: str | None = None
    reasons: tuple[Reason, ...] = ()

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> CustomActivityResult:
        # Marketo puts a skipped custom activity's reasons under "errors".
        reasons = tuple(Reason.from_json(r) for r in raw.get("errors") or raw.get("reasons") or ())
        guid = raw.get("marketoGUID")
        return CustomActivityResult(
            status=str(raw.get("status") or ("skipped" if reasons else "unknown")),
            id=_optional_int(raw.get("id")),
            marketo_guid=str(guid) if guid is not None else None,
            reasons=reasons,
        )


def parse_datetime(text: str) -> datetime:
    """Marketo dates: ``2026-11-20T09:14:02Z`` or ``...+0000``; always timezone-aware."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _optional_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
