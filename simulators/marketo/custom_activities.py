"""Custom activity types (draft -> approved) and the write-once custom activities themselves."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from simulators.marketo.faults import MarketoFault
from simulators.marketo.fields import format_datetime

MAX_TYPES = 10
MAX_ATTRIBUTES = 20
MAX_ATTRIBUTES_BYTES = 65_536
FIRST_TYPE_ID = 100_001
ATTRIBUTE_TYPES = frozenset(
    {"string", "boolean", "integer", "float", "link", "email", "currency", "date", "datetime"}
    | {"phone", "text"}
)
_API_NAME = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,255}$")
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9 _]+$")


@dataclass(frozen=True)
class Version:
    name: str
    description: str | None
    trigger_name: str
    filter_name: str
    primary_attribute: dict[str, Any]
    attributes: tuple[dict[str, Any], ...] = ()


@dataclass
class CustomType:
    type_id: int
    api_name: str
    created_at: float
    updated_at: float
    draft: Version | None
    live: Version | None = None
    deleted: bool = False

    @property
    def status(self) -> str:
        if self.live is None:
            return "draft"
        return "approved with draft" if self.draft is not None else "approved"

    def to_json(self, version: Version) -> dict[str, Any]:
        return {
            "id": self.type_id,
            "apiName": self.api_name,
            "name": version.name,
            "description": version.description,
            "triggerName": version.trigger_name,
            "filterName": version.filter_name,
            "createdAt": format_datetime(self.created_at),
            "updatedAt": format_datetime(self.updated_at),
            "status": self.status,
            "primaryAttribute": dict(version.primary_attribute),
            "attributes": [dict(a) for a in version.attributes],
        }


class CustomTypes:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._types: dict[str, CustomType] = {}

    def listing(self) -> list[dict[str, Any]]:
        return [t.to_json(t.draft or t.live) for t in self._live_types()]  # type: ignore[arg-type]

    def approved(self) -> list[CustomType]:
        return [t for t in self._live_types() if t.live is not None]

    def approved_by_id(self, type_id: int) -> CustomType | None:
        for t in self.approved():
            if t.type_id == type_id:
                return t
        return None

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        api_name = _required(body, "apiName")
        if not _API_NAME.match(api_name):
            raise MarketoFault("1003", f"Invalid apiName '{api_name}'")
        if api_name in self._types and not self._types[api_name].deleted:
            raise MarketoFault("1017", f"Activity type '{api_name}' already exists")
        if len(self._live_types()) >= MAX_TYPES:
            raise MarketoFault("1027", "Max Activity Type Limit Reached")
        primary = body.get("primaryAttribute")
        if not isinstance(primary, dict):
            raise MarketoFault("1002", "Missing value for the required parameter 'primaryAttribute'")
        name = _required(body, "name")
        if not _DISPLAY_NAME.match(name):
            raise MarketoFault("1003", f"Invalid name '{name}'")
        version = Version(
            name=name,
            description=body.get("description"),
            trigger_name=_required(body, "triggerName"),
            filter_name=_required(body, "filterName"),
            primary_attribute=_attribute(primary, primary=True),
        )
        now = self._clock()
        created = CustomType(FIRST_TYPE_ID + len(self._types), api_name, now, now, version)
        self._types[api_name] = created
        return created.to_json(version)

    def add_attributes(self, api_name: str, attributes: object) -> dict[str, Any]:
        found = self._find(api_name)
        if not isinstance(attributes, list) or not attributes:
            raise MarketoFault("1002", "Missing value for the required parameter 'attributes'")
        base = found.draft or found.live
        assert base is not None
        existing = {a["apiName"] for a in base.attributes}
        added = [_attribute(a) for a in attributes]
        for attr in added:
            if attr["apiName"] in existing or attr["apiName"] == base.primary_attribute["apiName"]:
                raise MarketoFault("1017", f"Attribute '{attr['apiName']}' already exists")
            existing.add(attr["apiName"])
        if len(base.attributes) + len(added) > MAX_ATTRIBUTES:
            raise MarketoFault("1028", "Max field limit reached")
        found.draft = replace(base, attributes=base.attributes + tuple(added))
        found.updated_at = self._clock()
        return found.to_json(found.draft)

    def approve(self, api_name: str) -> dict[str, Any]:
        found = self._find(api_name)
        if found.draft is None:
            raise MarketoFault("1003", f"Activity type '{api_name}' has no draft to approve")
        found.live, found.draft = found.draft, None
        found.updated_at = self._clock()
        return found.to_json(found.live)

    def describe(self, api_name: str, *, draft: bool) -> dict[str, Any]:
        found = self._find(api_name)
        version = found.draft if draft else found.live
        if version is None:
            state = "draft" if draft else "approved"
            raise MarketoFault("1013", f"No {state} version of activity type '{api_name}'")
        return found.to_json(version)

    def clear(self) -> None:
        self._types.clear()

    def _find(self, api_name: str) -> CustomType:
        found = self._types.get(api_name)
        if found is None or found.deleted:
            raise MarketoFault("1013", f"Activity type '{api_name}' not found")
        return found

    def _live_types(self) -> list[CustomType]:
        return [t for t in self._types.values() if not t.deleted]


@dataclass(frozen=True)
class CustomRecord:
    lead_id: int
    type_id: int
    at: float
    primary_attribute_value: str
    attributes: tuple[dict[str, Any], ...] = field(default=())


def parse_record(item: object, types: CustomTypes) -> CustomRecord:
    """One ``input`` item of Add Custom Activities, checked against its approved type."""
    if not isinstance(item, dict):
        raise MarketoFault("1003", "Invalid data")
    for key in ("leadId", "activityDate", "activityTypeId", "primaryAttributeValue"):
        if item.get(key) in (None, ""):
            raise MarketoFault("1002", f"Missing value for the required parameter '{key}'")
    kind = types.approved_by_id(_int(item["activityTypeId"], "activityTypeId"))
    if kind is None or kind.live is None:
        raise MarketoFault("1013", f"Activity type '{item['activityTypeId']}' not found")
    attributes = item.get("attributes", [])
    if not isinstance(attributes, list):
        raise MarketoFault("1003", "Invalid value for 'attributes'")
    if len(str(attributes).encode()) > MAX_ATTRIBUTES_BYTES:
        raise MarketoFault("1049", "Failed to Create Activity")
    known = {a["apiName"]: a for a in kind.live.attributes}
    by_name = {a["name"]: a for a in kind.live.attributes}
    resolved = []
    for attr in attributes:
        if not isinstance(attr, dict):
            raise MarketoFault("1003", "Invalid attribute")
        key = str(attr.get("apiName") or attr.get("name"))
        spec = known.get(key) or by_name.get(key)
        if spec is None:
            raise MarketoFault("1006", f"Field '{key}' not found")
        resolved.append({"name": spec["name"], "apiName": spec["apiName"], "value": attr.get("value")})
    return CustomRecord(
        lead_id=_int(item["leadId"], "leadId"),
        type_id=kind.type_id,
        at=_instant(item["activityDate"]),
        primary_attribute_value=str(item["primaryAttributeValue"]),
        attributes=tuple(resolved),
    )


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MarketoFault("1002", f"Missing value for the required parameter '{key}'")
    return value


def _attribute(raw: object, *, primary: bool = False) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise MarketoFault("1003", "Invalid attribute")
    api_name = _required(raw, "apiName")
    if not _API_NAME.match(api_name):
        raise MarketoFault("1003", f"Invalid apiName '{api_name}'")
    data_type = raw.get("dataType", "string")
    if data_type not in ATTRIBUTE_TYPES:
        raise MarketoFault("1003", f"Invalid dataType '{data_type}'")
    attr = {
        "apiName": api_name,
        "name": _required(raw, "name"),
        "description": raw.get("description"),
        "dataType": data_type,
    }
    if primary:
        attr["isPrimary"] = True
    return attr


def _int(value: object, key: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise MarketoFault("1003", f"Invalid value for '{key}'") from None


def _instant(value: object) -> float:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise MarketoFault("704", "Invalid date format") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
