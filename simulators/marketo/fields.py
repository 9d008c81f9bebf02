"""The person (lead) field catalog and Marketo's type rules for written values.

Each field has three names, as in Marketo: the REST name (``company``), the SOAP name
(``Company``, used by webhook response mappings) and the display name (``Company Name``,
used by ``{{lead.Company Name}}`` tokens).

The catalog is Marketo's standard fields, then the custom fields a Marketo admin creates for
mdsync (docs/marketo-setup.md): every field mdsync's default mapping (shared/default_mapping.yaml)
names that is not a standard one, typed as the mapping types it. A field added to the default
mapping is therefore in the simulated instance too; fields beyond it come from the
configuration (``ExtraField``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shared.mapping import FieldMapping, FieldType, load_mapping
from simulators.marketo.config import ExtraField
from simulators.marketo.faults import MarketoFault

Value = str | int | float | bool | None

STRING_TYPES = frozenset({"string", "text", "phone", "url", "email", "reference"})
# Standard fields usable as filterType / lookupField (custom string/email/integer fields are too).
SEARCHABLE_STANDARD = frozenset({"id", "email", "leadPartitionId"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class FieldDef:
    field_id: int
    name: str
    display_name: str
    data_type: str
    soap_name: str
    length: int | None = None
    read_only: bool = False
    custom: bool = False

    @property
    def searchable(self) -> bool:
        if self.name in SEARCHABLE_STANDARD:
            return True
        return self.custom and self.data_type in {"string", "email", "integer"}


def _f(fid: int, name: str, display: str, dtype: str, soap: str, **kw: Any) -> FieldDef:
    length = kw.pop("length", 255 if dtype in {"string", "email", "phone", "url"} else None)
    return FieldDef(fid, name, display, dtype, soap, length=length, **kw)


STANDARD_FIELDS: tuple[FieldDef, ...] = (
    _f(1, "id", "Id", "integer", "Id", read_only=True),
    _f(2, "company", "Company Name", "string", "Company"),
    _f(3, "email", "Email Address", "email", "Email"),
    _f(4, "firstName", "First Name", "string", "FirstName"),
    _f(5, "lastName", "Last Name", "string", "LastName"),
    _f(6, "title", "Job Title", "string", "Title"),
    _f(7, "phone", "Phone Number", "phone", "Phone"),
    _f(8, "mobilePhone", "Mobile Phone Number", "phone", "MobilePhone"),
    _f(9, "city", "City", "string", "City"),
    _f(10, "country", "Country", "string", "Country"),
    _f(11, "leadSource", "Person Source", "string", "LeadSource"),
    _f(12, "unsubscribed", "Unsubscribed", "boolean", "Unsubscribed"),
    _f(13, "createdAt", "Created At", "datetime", "CreatedAt", read_only=True),
    _f(14, "updatedAt", "Updated At", "datetime", "UpdatedAt", read_only=True),
    _f(15, "leadPartitionId", "Person Partition Id", "integer", "LeadPartitionId", read_only=True),
    _f(16, "dateOfBirth", "Date of Birth", "date", "DateofBirth"),
    _f(17, "annualRevenue", "Annual Revenue", "currency", "AnnualRevenue"),
)

# The Marketo data type of a custom field holding values the mapping types so.
_MARKETO_TYPES = {
    FieldType.STRING: "string",
    FieldType.EMAIL: "email",
    FieldType.PHONE: "phone",
    FieldType.BOOLEAN: "boolean",
    FieldType.INTEGER: "integer",
    FieldType.NUMBER: "float",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.OPTION: "string",
    FieldType.MONEY: "currency",
}
# How the Dynamics-sync fields are named in Marketo's UI ("msftIsDeleted": "Microsoft Is Deleted").
_PREFIXES = {"msft": ("Microsoft", "MSFT")}


def _custom(field_id: int, name: str, data_type: str) -> FieldDef:
    """A custom field, its display and SOAP names made from its REST name."""
    words = re.findall(r"[a-z0-9]+|[A-Z][a-z0-9]*", name)
    display, soap = _PREFIXES.get(words[0], (words[0].title(), words[0].title()))
    return _f(
        field_id, name, " ".join([display, *words[1:]]), data_type, soap + "".join(words[1:]), custom=True
    )


def mapped_fields(mapping: FieldMapping, first_id: int = 101) -> tuple[FieldDef, ...]:
    """The custom fields ``mapping`` needs beyond Marketo's standard ones: its mapped fields
    and its link fields. They are ordinary updateable custom fields, since mdsync replaces the
    native sync (whose own fields would be read-only and crmManaged)."""
    links = mapping.links
    wanted: dict[str, str] = {
        links.marketo_type: "string",
        links.marketo_lead_id: "string",
        links.marketo_contact_id: "string",
        links.marketo_is_deleted: "boolean",
    }
    for field in (*mapping.lead.fields, *mapping.contact.fields):
        wanted.setdefault(field.marketo, _MARKETO_TYPES[field.type])
    standard = {f.name for f in STANDARD_FIELDS}
    custom = [(name, data_type) for name, data_type in wanted.items() if name not in standard]
    return tuple(_custom(first_id + i, name, data_type) for i, (name, data_type) in enumerate(custom))


MAPPED_FIELDS = mapped_fields(load_mapping())

DEFAULT_READ_FIELDS = ("id", "email", "firstName", "lastName", "createdAt", "updatedAt")


class FieldCatalog:
    """Lookup of fields by REST, SOAP and display name."""

    def __init__(self, extra: tuple[ExtraField, ...] = ()) -> None:
        fields = [*STANDARD_FIELDS, *MAPPED_FIELDS]
        for i, spec in enumerate(extra):
            soap = spec.soap_name or spec.name[:1].upper() + spec.name[1:]
            fields.append(
                FieldDef(
                    1000 + i,
                    spec.name,
                    spec.display_name,
                    spec.data_type,
                    soap,
                    length=spec.length,
                    read_only=spec.read_only,
                    custom=True,
                )
            )
        self.fields: tuple[FieldDef, ...] = tuple(fields)
        self._by_name = {f.name: f for f in fields}
        self._by_soap = {f.soap_name.lower(): f for f in fields}
        self._by_display = {f.display_name.lower(): f for f in fields}

    def get(self, name: str) -> FieldDef | None:
        return self._by_name.get(name)

    def require(self, name: str) -> FieldDef:
        found = self._by_name.get(name)
        if found is None:
            raise MarketoFault("1006", f"Field '{name}' not found")
        return found

    def by_soap(self, soap_name: str) -> FieldDef | None:
        return self._by_soap.get(soap_name.lower())

    def by_display(self, display_name: str) -> FieldDef | None:
        return self._by_display.get(display_name.strip().lower())


def invalid(value: object, field: FieldDef) -> MarketoFault:
    return MarketoFault("1001", f"Invalid value '{value}'. Required of type '{field.data_type}'")


def coerce(field: FieldDef, value: object) -> Value:
    """The stored form of ``value`` written to ``field``; MarketoFault 1001 if it does not fit.

    ``null`` and ``""`` are stored as null; text longer than the field's length is cut to it,
    silently (a String field holds 255 characters, and Sync Leads still answers ``updated``)."""
    if value is None or value == "":
        return None
    kind = field.data_type
    if kind == "boolean":
        return _boolean(field, value)
    if kind == "integer":
        return _integer(field, value)
    if kind in {"float", "currency", "percent", "score"}:
        return _float(field, value)
    if kind == "date":
        return _date(field, value)
    if kind == "datetime":
        return _datetime(field, value)
    if isinstance(value, dict | list):
        raise invalid(value, field)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if kind == "email" and not (text.isascii() and _EMAIL.match(text)):
        raise invalid(value, field)
    if field.length is not None and kind != "email":
        return text[: field.length]
    return text


def _boolean(field: FieldDef, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise invalid(value, field)


def _integer(field: FieldDef, value: object) -> int:
    number: int | None = None
    if isinstance(value, bool):
        raise invalid(value, field)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        number = int(value.strip())
    # Marketo integers (ids included) are 32-bit.
    if number is None or not -(2**31) <= number < 2**31:
        raise invalid(value, field)
    return number


def _float(field: FieldDef, value: object) -> float:
    if isinstance(value, bool):
        raise invalid(value, field)
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise invalid(value, field)
    return number


def _date(field: FieldDef, value: object) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise invalid(value, field) from None


def _datetime(field: FieldDef, value: object) -> str:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid(value, field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return format_datetime(parsed.timestamp())


def format_datetime(epoch: float) -> str:
    """Marketo's datetime form: UTC, whole seconds, literal ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def change_text(value: Value) -> str | None:
    """How a value appears as newValue/oldValue of a Change Data Value activity."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lookup_key(field: FieldDef, value: Value) -> Value:
    """The comparison form for filterType / lookupField matches (text is case-insensitive)."""
    if isinstance(value, str) and field.data_type in STRING_TYPES:
        folded = value.casefold()
        return value if folded == value else folded  # an index keeps one copy of the text
    return value
