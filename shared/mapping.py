"""Field selection: which fields sync, in which direction, and who wins a collision.

The mapping is a YAML file validated by pydantic (``shared/default_mapping.yaml`` is the default;
``MDSYNC_FIELD_MAPPING`` names another). Per Dynamics entity (lead, contact) it lists the synced
fields with their Marketo REST name, Dynamics logical name, direction, type and, for option sets,
the value map (Dynamics integer <-> Marketo string).
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
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
        return self

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
