"""Check a Dataverse write against the table's metadata before sending it. Pure: no I/O.

Catching what the metadata already tells us (system-required columns, maximum length, type,
option set; business-required columns when the mapping asks for it) saves a request, keeps one
bad person from failing an all-or-nothing CreateMultiple, and gives the person's Activity Log a
reason a marketer can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.notices import FieldValue

# Columns the platform fills itself on create, although they are SystemRequired.
AUTO_FILLED = frozenset({"ownerid", "statecode", "statuscode", "leadid", "contactid", "accountid"})
_STRING_TYPES = frozenset({"String", "Memo"})
_NUMBER_TYPES = frozenset({"Decimal", "Double", "Money"})
_INTEGER_TYPES = frozenset({"Integer", "BigInt"})
_OPTION_TYPES = frozenset({"Picklist", "State", "Status"})
# References to other rows: written through navigation properties (@odata.bind), never as a value.
_LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})


class Column(Protocol):
    """What validation needs to know about a column (Dataverse AttributeMetadata)."""

    @property
    def logical_name(self) -> str: ...
    @property
    def attribute_type(self) -> str: ...
    @property
    def required_level(self) -> str: ...
    @property
    def max_length(self) -> int | None: ...
    @property
    def options(self) -> frozenset[int] | None: ...
    @property
    def valid_for_create(self) -> bool: ...
    @property
    def valid_for_update(self) -> bool: ...


@dataclass(frozen=True)
class Problem:
    column: str
    message: str


def _is_datetime(value: FieldValue) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _type_problem(column: Column, value: FieldValue) -> str | None:
    kind = column.attribute_type
    if kind in _LOOKUP_TYPES:
        return "is a reference to another row and cannot be synced as a value"
    if kind == "DateTime" and not _is_datetime(value):
        return f"expects an ISO 8601 date and time, got {value!r}"
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            return f"expects text, got {type(value).__name__}"
        if column.max_length is not None and len(value) > column.max_length:
            return f"is {len(value)} characters long; the maximum is {column.max_length}"
    elif kind == "Boolean" and not isinstance(value, bool):
        return f"expects true or false, got {value!r}"
    elif kind in _INTEGER_TYPES and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expects a whole number, got {value!r}"
    elif kind in _NUMBER_TYPES and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"expects a number, got {value!r}"
    elif kind in _OPTION_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expects an option value, got {value!r}"
        if column.options is not None and value not in column.options:
            allowed = ", ".join(str(v) for v in sorted(column.options))
            return f"{value} is not one of its options ({allowed})"
    return None


def _required(column: Column, *, business: bool) -> bool:
    return column.required_level == "SystemRequired" or (
        business and column.required_level == "ApplicationRequired"
    )


def validate_write(
    columns: Mapping[str, Column],
    values: Mapping[str, FieldValue],
    *,
    create: bool,
    enforce_business_required: bool = False,
) -> list[Problem]:
    """Every reason Dataverse would (or, with business rules, should) refuse this write."""
    problems = []
    for name, value in values.items():
        if name.endswith("@odata.bind"):
            continue  # a reference (a currency): Dataverse checks the row it names
        column = columns.get(name)
        if column is None:
            problems.append(Problem(name, "is not a column of this table"))
            continue
        if not (column.valid_for_create if create else column.valid_for_update):
            problems.append(Problem(name, f"cannot be written on {'create' if create else 'update'}"))
            continue
        if value is None:
            if _required(column, business=enforce_business_required) and name not in AUTO_FILLED:
                problems.append(Problem(name, f"is required ({column.required_level}) and cannot be empty"))
            continue
        message = _type_problem(column, value)
        if message:
            problems.append(Problem(name, message))
    if create:
        for name, column in columns.items():
            missing = values.get(name) is None
            required = name not in AUTO_FILLED and _required(column, business=enforce_business_required)
            if missing and required and not any(p.column == name for p in problems):
                problems.append(Problem(name, f"is required ({column.required_level}) but has no value"))
    return problems


def describe(problems: list[Problem]) -> str:
    return "; ".join(f"{p.column} {p.message}" for p in problems)
