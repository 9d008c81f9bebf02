"""Reading ``EntityDefinitions`` answers into :class:`EntityMetadata`.

Common column properties come from ``/Attributes``; MaxLength, FormatName and option values only
exist on the cast segments (``Microsoft.Dynamics.CRM.StringAttributeMetadata`` ...), so those are
separate queries whose answers are merged here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.dataverse.models import AttributeMetadata, EntityMetadata, TableInfo

TABLE_SELECT = (
    "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,"
    "ChangeTrackingEnabled,IsOptimisticConcurrencyEnabled"
)
ATTRIBUTE_SELECT = (
    "LogicalName,AttributeType,AttributeTypeName,RequiredLevel,"
    "IsValidForCreate,IsValidForUpdate,IsValidForRead"
)
OPTIONS = {"$select": "LogicalName", "$expand": "OptionSet($select=Options)"}
CAST_QUERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("StringAttributeMetadata", {"$select": "LogicalName,MaxLength,FormatName"}),
    ("MemoAttributeMetadata", {"$select": "LogicalName,MaxLength"}),
    ("PicklistAttributeMetadata", OPTIONS),
    ("StateAttributeMetadata", OPTIONS),
    ("StatusAttributeMetadata", OPTIONS),
    ("DateTimeAttributeMetadata", {"$select": "LogicalName,Format,DateTimeBehavior"}),
)


def table_info(data: dict[str, Any]) -> TableInfo:
    return TableInfo(
        logical_name=str(data["LogicalName"]),
        entity_set=str(data["EntitySetName"]),
        primary_id=str(data["PrimaryIdAttribute"]),
        primary_name=str(data.get("PrimaryNameAttribute") or ""),
        change_tracking=bool(data.get("ChangeTrackingEnabled")),
        optimistic_concurrency=bool(data.get("IsOptimisticConcurrencyEnabled")),
    )


def _label(option: dict[str, Any]) -> str:
    label = option.get("Label") or {}
    user = label.get("UserLocalizedLabel") or {}
    if user.get("Label"):
        return str(user["Label"])
    localized = label.get("LocalizedLabels") or []
    return str(localized[0].get("Label", "")) if localized else ""


def build(
    table: TableInfo, attributes: Iterable[dict[str, Any]], casts: Iterable[dict[str, Any]]
) -> EntityMetadata:
    """``attributes``: the /Attributes items; ``casts``: the items of every cast query."""
    extra: dict[str, dict[str, Any]] = {}
    for item in casts:
        name = str(item["LogicalName"])
        details = extra.setdefault(name, {})
        if item.get("MaxLength") is not None:
            details["max_length"] = int(item["MaxLength"])
        if isinstance(item.get("FormatName"), dict):
            details["format"] = item["FormatName"].get("Value")
        if isinstance(item.get("DateTimeBehavior"), dict):
            details["date_behavior"] = item["DateTimeBehavior"].get("Value")
            details["date_format"] = item.get("Format")
        option_set = item.get("OptionSet")
        if isinstance(option_set, dict):
            details["option_labels"] = {int(o["Value"]): _label(o) for o in option_set.get("Options") or []}
    columns: dict[str, AttributeMetadata] = {}
    for item in attributes:
        name = str(item["LogicalName"])
        type_name = (item.get("AttributeTypeName") or {}).get("Value") or ""
        attribute_type = str(item.get("AttributeType") or type_name.removesuffix("Type"))
        columns[name] = AttributeMetadata(
            logical_name=name,
            attribute_type=attribute_type,
            required_level=str((item.get("RequiredLevel") or {}).get("Value") or "None"),
            valid_for_create=bool(item.get("IsValidForCreate")),
            valid_for_update=bool(item.get("IsValidForUpdate")),
            valid_for_read=bool(item.get("IsValidForRead", True)),
            **extra.get(name, {}),
        )
    return EntityMetadata(table, columns)
