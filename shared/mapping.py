"""Field selection: which fields sync, in which direction, and who wins a collision.

The mapping is a YAML file validated by pydantic (``shared/default_mapping.yaml`` is the default;
``MDSYNC_FIELD_MAPPING`` names another). Per Dynamics entity (lead, contact) it lists the synced
fields with their Marketo REST name, Dynamics logical name, direction, type and, for option sets,
the value map (Dynamics integer <-> Marketo string); for money, the currency; for dates, the time
zone they are typed in. ``options.first_link`` names the side that fills the other when a pair is
linked for the first time (docs/fields.md states every rule).

Some facts about a field are Dynamics metadata rather than configuration (a date column's
DateTimeBehavior): :func:`bind_dates` returns the mapping with them filled in, so the value rules
of ``shared.normalize`` stay pure functions of the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from shared.errors import ConfigurationError


class Direction(StrEnum):
    BOTH = "both"
    TO_DYNAMICS = "to_dynamics"
    TO_MARKETO = "to_marketo"

    @property
    def to_dynamics(self) -> bool:
        return self in (Direction.BOTH, Direction.TO_DYNAMICS)

    @property
    def to_marketo(self) -> bool:
        return self in (Direction.BOTH, Direction.TO_MARKETO)


class Side(StrEnum):
    MARKETO = "marketo"
    DYNAMICS = "dynamics"


class FieldType(StrEnum):
    STRING = "string"
    EMAIL = "email"
    PHONE = "phone"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    OPTION = "option"
    MONEY = "money"


class DateBehavior(StrEnum):
    """A Dataverse date column's DateTimeBehavior: how its values are stored and returned."""

    USER_LOCAL = "UserLocal"  # an instant, returned in UTC (a date-only value is local midnight)
    DATE_ONLY = "DateOnly"  # a calendar date, returned as yyyy-MM-dd
    TIME_ZONE_INDEPENDENT = "TimeZoneIndependent"  # a face value, returned with a "Z" that means nothing


def date_behavior(value: object) -> DateBehavior | None:
    """A DateTimeBehavior as the metadata names it, or None (not a date column, or unknown)."""
    try:
        return DateBehavior(str(value)) if value else None
    except ValueError:
        return None


def _zone(name: str | None) -> str | None:
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None
    return name


class FieldMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    marketo: str = Field(min_length=1, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    dynamics: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    direction: Direction = Direction.BOTH
    type: FieldType = FieldType.STRING
    # Option sets: Dynamics integer value -> Marketo string.
    values: dict[int, str] | None = None
    # Overrides the entity's collision rule for this field.
    collision_winner: Side | None = None
    # Overrides options.first_link for this field: whose value wins when a pair is linked first.
    first_link: Side | None = None
    # Money: the ISO 4217 code of the currency the Marketo field holds (Dynamics rows in another
    # currency are not copied either way; see docs/fields.md).
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    # Dates: the time zone a date is typed in (default options.time_zone), and the Dynamics
    # column's DateTimeBehavior (read from the metadata unless stated here).
    time_zone: str | None = None
    dynamics_date: DateBehavior | None = None

    _valid_zone = field_validator("time_zone")(_zone)

    @model_validator(mode="after")
    def _option_values(self) -> Self:
        if self.type is FieldType.OPTION and not self.values:
            raise ValueError(f"{self.marketo}: an option field needs a 'values' map")
        if self.values is not None:
            if self.type is not FieldType.OPTION:
                raise ValueError(f"{self.marketo}: 'values' is only for type 'option'")
            labels = [label.strip().lower() for label in self.values.values()]
            if len(set(labels)) != len(labels):
                raise ValueError(f"{self.marketo}: two option values map to the same Marketo string")
        if (self.type is FieldType.MONEY) != (self.currency is not None):
            raise ValueError(f"{self.marketo}: a money field needs a 'currency' (and only money has one)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone or "UTC")

    def option_label(self, value: int) -> str | None:
        return (self.values or {}).get(value)

    def option_value(self, label: str) -> int | None:
        wanted = label.strip().lower()
        for value, candidate in (self.values or {}).items():
            if candidate.strip().lower() == wanted:
                return value
        return None


class EntityMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    collision_winner: Side
    fields: tuple[FieldMap, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for attr in ("marketo", "dynamics"):
            names = [getattr(f, attr) for f in self.fields]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{attr} field mapped twice: {', '.join(duplicates)}")
        if not any(f.type is FieldType.EMAIL for f in self.fields):
            raise ValueError("the email field must be mapped (type: email): links match on it")
        return self

    @property
    def email(self) -> FieldMap:
        return next(f for f in self.fields if f.type is FieldType.EMAIL)

    def winner(self, field: FieldMap) -> Side:
        return field.collision_winner or self.collision_winner

    def replace_fields(self, fields: Mapping[str, FieldMap]) -> EntityMapping:
        """This mapping with some fields (by Marketo name) replaced."""
        return self.model_copy(update={"fields": tuple(fields.get(f.marketo, f) for f in self.fields)})

    def by_marketo(self, name: str) -> FieldMap | None:
        return next((f for f in self.fields if f.marketo == name), None)

    def by_dynamics(self, name: str) -> FieldMap | None:
        return next((f for f in self.fields if f.dynamics == name), None)


class LinkFields(BaseModel):
    """Where each system shows the other's id, so admins can see the link."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    marketo_lead_id: str = "msftLeadId"
    marketo_contact_id: str = "msftContactId"
    marketo_type: str = "msftType"
    marketo_is_deleted: str = "msftIsDeleted"
    dynamics_marketo_id: str = "mdsync_marketoid"


class Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A Dynamics boolean column; rows where it is false are not synced (missing/null = sync).
    sync_filter: str | None = "new_synctomkto"
    # Push new Marketo persons to Dynamics automatically (off: only the flow step creates leads).
    auto_create_in_dynamics: bool = False
    # Also refuse writes that leave business-required (ApplicationRequired) columns empty.
    enforce_business_required: bool = False
    # How the flow step finds an unlinked Dynamics record for a person: by email.
    match_on_email: bool = True
    # A first link (a record linked to an existing person, a relink after a qualification or a
    # merge, the initial sync): where both sides hold different values, this side's value fills
    # the other. A blank never overwrites a value, whichever side this names.
    first_link: Side = Side.DYNAMICS
    # The time zone dates are typed in, for Dynamics date columns stored as an instant
    # ("User Local" date-only columns) or as a face value ("Time Zone Independent").
    time_zone: str = "UTC"

    _valid_zone = field_validator("time_zone")(_zone)


class FieldMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lead: EntityMapping
    contact: EntityMapping
    links: LinkFields = LinkFields()
    options: Options = Options()

    def entity(self, name: str) -> EntityMapping:
        if name == "lead":
            return self.lead
        if name == "contact":
            return self.contact
        raise ValueError(f"unknown Dynamics entity {name!r}")

    def marketo_names(self) -> frozenset[str]:
        """The mapped Marketo fields of both entities (what change capture reports)."""
        return frozenset(f.marketo for e in (self.lead, self.contact) for f in e.fields)

    def marketo_fields(self) -> list[str]:
        """Every Marketo field mdsync reads: mapped fields of both entities plus the link fields."""
        names = {f.marketo for f in (*self.lead.fields, *self.contact.fields)}
        link = self.links
        names |= {link.marketo_lead_id, link.marketo_contact_id, link.marketo_type, link.marketo_is_deleted}
        return sorted(names | {"id", "email"})

    def dynamics_columns(self, entity: str) -> list[str]:
        columns = {f.dynamics for f in self.entity(entity).fields}
        columns.add(self.links.dynamics_marketo_id)
        if self.options.sync_filter:
            columns.add(self.options.sync_filter)
        return sorted(columns)


def bind_dates(
    entity: EntityMapping, behaviors: Mapping[str, DateBehavior | None], time_zone: str
) -> EntityMapping:
    """``entity`` with each date field's DateTimeBehavior (``behaviors``: Dynamics column ->
    behavior, from the metadata) and time zone filled in where the mapping does not state them."""
    bound: dict[str, FieldMap] = {}
    for field in entity.fields:
        if field.type not in (FieldType.DATE, FieldType.DATETIME):
            continue
        behavior = field.dynamics_date or behaviors.get(field.dynamics) or DateBehavior.USER_LOCAL
        bound[field.marketo] = field.model_copy(
            update={"dynamics_date": behavior, "time_zone": field.time_zone or time_zone}
        )
    return entity.replace_fields(bound) if bound else entity


DEFAULT_MAPPING = "default_mapping.yaml"


def parse_mapping(text: str, *, origin: str = "<mapping>") -> FieldMapping:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{origin}: not valid YAML: {exc}") from None
    try:
        return FieldMapping.model_validate(document)
    except PydanticValidationError as exc:
        problems = "\n".join(f"  {_where(document, e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{origin}: invalid field mapping:\n{problems}") from None


def _where(document: Any, loc: tuple[int | str, ...]) -> str:
    """``lead.fields[firstName]`` rather than ``lead.fields.3``: a list entry is named by its
    Marketo field (else its Dynamics column, else its position)."""
    parts: list[str] = []
    node = document
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
            name = node.get("marketo") or node.get("dynamics") if isinstance(node, dict) else None
            parts[-1:] = [f"{parts[-1] if parts else ''}[{name if name else part}]"]
            continue
        node = node.get(part) if isinstance(node, dict) else None
        parts.append(str(part))
    return ".".join(parts) or "(root)"


def load_mapping(path: Path | None = None) -> FieldMapping:
    """The mapping at ``path``, or the default mapping shipped with mdsync."""
    if path is None:
        text = resources.files("shared").joinpath(DEFAULT_MAPPING).read_text(encoding="utf-8")
        return parse_mapping(text, origin=DEFAULT_MAPPING)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"MDSYNC_FIELD_MAPPING: cannot read {path}: {exc}") from None
    return parse_mapping(text, origin=str(path))
