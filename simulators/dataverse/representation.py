"""Rows as the Web API shows them: lookup properties, ETags, ISO dates, annotations."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from simulators.dataverse.faults import odata_error
from simulators.dataverse.schema import LOOKUP_TYPES, OPTION_TYPES, AttrType, Column, Table
from simulators.dataverse.store import Ref, Row

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL = "Microsoft.Dynamics.CRM.lookuplogicalname"
ASSOCIATED_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"

# Looks up the primary name of a referenced row (for the lookup FormattedValue).
NameOf = Callable[[Ref], str | None]


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def etag(row: Row) -> str:
    return f'W/"{row["versionnumber"]}"'


def formatted(column: Column, value: Any) -> str | None:
    """The label Dataverse shows for a value (option label, Yes/No, money, date)."""
    if value is None:
        return None
    if column.type in OPTION_TYPES:
        return column.options.get(int(value))
    if column.type is AttrType.BOOLEAN:
        return column.bool_labels[1] if value else column.bool_labels[0]
    if column.type is AttrType.MONEY:
        return f"${float(value):,.2f}"
    if column.type is AttrType.DATETIME and isinstance(value, datetime):
        if column.date_format == "DateOnly":
            return value.astimezone(UTC).strftime("%m/%d/%Y").lstrip("0")
        return value.astimezone(UTC).strftime("%m/%d/%Y %I:%M %p").lstrip("0")
    if column.type in (AttrType.INTEGER,):
        return f"{int(value):,}"
    return None


def json_value(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Ref):
        return value.id
    if isinstance(value, datetime):
        # A DateOnly column is an Edm.Date; the others are returned with a "Z" (for a
        # TimeZoneIndependent column the digits as written: no conversion either way).
        return value.date().isoformat() if column.date_behavior == "DateOnly" else iso(value)
    return value


class AnnotationFilter:
    """Which instance annotations a ``Prefer: odata.include-annotations`` value asks for."""

    def __init__(self, spec: str | None) -> None:
        self.patterns = [p.strip() for p in (spec or "").split(",") if p.strip()]

    def wants(self, name: str) -> bool:
        for pattern in self.patterns:
            if pattern in ("*", name):
                return True
            if pattern.endswith(".*") and name.startswith(pattern[:-1]):
                return True
        return False

    @property
    def any(self) -> bool:
        return bool(self.patterns)


def readable_columns(table: Table) -> list[Column]:
    return [c for c in table.columns.values() if c.valid_read]


def resolve_select(table: Table, names: Iterable[str]) -> list[Column]:
    """Columns named in ``$select`` (lookups by their ``_name_value`` property)."""
    out: list[Column] = []
    for name in names:
        column = table.column(name)
        if column is not None and column.type in LOOKUP_TYPES:
            column = None
        column = column or table.lookup_by_property(name)
        if column is None or not column.valid_read:
            raise odata_error(
                f"Could not find a property named '{name}' on type "
                f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
            )
        out.append(column)
    return out


def represent(
    table: Table,
    row: Row,
    columns: list[Column] | None,
    annotations: AnnotationFilter,
    name_of: NameOf,
) -> dict[str, Any]:
    out: dict[str, Any] = {"@odata.etag": etag(row)}
    chosen = columns if columns is not None else readable_columns(table)
    if all(c.name != table.primary_id for c in chosen):
        chosen = [*chosen, table.columns[table.primary_id]]
    for column in chosen:
        value = row.get(column.name)
        prop = column.lookup_property if column.type in LOOKUP_TYPES else column.name
        if annotations.any:
            out.update(_annotations(column, prop, value, annotations, name_of))
        out[prop] = json_value(column, value)
    return out


def _annotations(
    column: Column, prop: str, value: Any, annotations: AnnotationFilter, name_of: NameOf
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if value is None:
        return out
    if isinstance(value, Ref):
        if annotations.wants(FORMATTED):
            name = name_of(value)
            if name is not None:
                out[f"{prop}@{FORMATTED}"] = name
        if annotations.wants(ASSOCIATED_NAV):
            nav = next((n for n, t in column.navigation.items() if t == value.logical), column.name)
            out[f"{prop}@{ASSOCIATED_NAV}"] = nav
        if annotations.wants(LOOKUP_LOGICAL):
            out[f"{prop}@{LOOKUP_LOGICAL}"] = value.logical
        return out
    label = formatted(column, value)
    if label is not None and annotations.wants(FORMATTED):
        out[f"{prop}@{FORMATTED}"] = label
    return out


_PREFER = re.compile(r'\s*([A-Za-z][\w.\-]*)\s*(?:=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')


def parse_prefer(header: str | None) -> dict[str, str]:
    """``return=representation,odata.maxpagesize=10`` -> {"return": "representation", ...}."""
    out: dict[str, str] = {}
    if not header:
        return out
    for match in _PREFER.finditer(header):
        if match.group(1):
            out[match.group(1).lower()] = (match.group(2) or "").strip().strip('"')
    return out
