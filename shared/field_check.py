"""Check a field mapping against both systems' live metadata. Pure: the caller fetches.

Names every mapped field that does not exist, whose type cannot hold the other side's values,
or that mdsync would have to write but cannot (read-only in Marketo, not valid for create or
update in Dataverse); and the link and sync-filter fields the sync itself relies on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.dataverse.models import AttributeMetadata
from shared.mapping import FieldMap, FieldMapping, FieldType
from shared.marketo.models import FieldDescription

# Which Marketo describe types and Dataverse attribute types each mapping type accepts.
MARKETO_TYPES: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset({"string", "text", "email", "phone", "url"}),
    FieldType.EMAIL: frozenset({"email", "string"}),
    FieldType.PHONE: frozenset({"phone", "string"}),
    FieldType.BOOLEAN: frozenset({"boolean"}),
    FieldType.INTEGER: frozenset({"integer", "score"}),
    FieldType.NUMBER: frozenset({"float", "currency", "integer", "percent", "score"}),
    FieldType.DATE: frozenset({"date"}),
    FieldType.DATETIME: frozenset({"datetime"}),
    FieldType.OPTION: frozenset({"string"}),
}
DATAVERSE_TYPES: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset({"String", "Memo"}),
    FieldType.EMAIL: frozenset({"String"}),
    FieldType.PHONE: frozenset({"String"}),
    FieldType.BOOLEAN: frozenset({"Boolean"}),
    FieldType.INTEGER: frozenset({"Integer", "BigInt"}),
    FieldType.NUMBER: frozenset({"Decimal", "Double", "Money", "Integer"}),
    FieldType.DATE: frozenset({"DateTime"}),
    FieldType.DATETIME: frozenset({"DateTime"}),
    FieldType.OPTION: frozenset({"Picklist", "State", "Status"}),
}


@dataclass(frozen=True)
class FieldProblem:
    where: str  # "lead.firstName -> firstname", "links.marketo_lead_id", ...
    system: str  # "marketo" or "dynamics"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.system}: {self.message}"


def _check_marketo(where: str, fmap: FieldMap, fields: Mapping[str, FieldDescription]) -> list[FieldProblem]:
    described = fields.get(fmap.marketo)
    if described is None:
        return [FieldProblem(where, "marketo", f"unknown field {fmap.marketo!r}")]
    problems = []
    if described.data_type not in MARKETO_TYPES[fmap.type]:
        problems.append(
            FieldProblem(
                where, "marketo", f"{fmap.marketo} is {described.data_type}, not usable as {fmap.type.value}"
            )
        )
    if fmap.direction.to_marketo and not described.updateable:
        problems.append(
            FieldProblem(where, "marketo", f"{fmap.marketo} is read-only but the mapping writes it")
        )
    return problems


def _check_dynamics(
    where: str, fmap: FieldMap, columns: Mapping[str, AttributeMetadata]
) -> list[FieldProblem]:
    column = columns.get(fmap.dynamics)
    if column is None:
        return [FieldProblem(where, "dynamics", f"unknown column {fmap.dynamics!r}")]
    problems = []
    if column.attribute_type not in DATAVERSE_TYPES[fmap.type]:
        problems.append(
            FieldProblem(
                where,
                "dynamics",
                f"{fmap.dynamics} is {column.attribute_type}, not usable as {fmap.type.value}",
            )
        )
    if fmap.direction.to_dynamics and not (column.valid_for_update and column.valid_for_create):
        problems.append(
            FieldProblem(where, "dynamics", f"{fmap.dynamics} is read-only but the mapping writes it")
        )
    if fmap.values and column.options is not None:
        unknown = sorted(set(fmap.values) - column.options)
        if unknown:
            problems.append(
                FieldProblem(
                    where, "dynamics", f"option values {unknown} are not in {fmap.dynamics}'s option set"
                )
            )
    return problems


def check_mapping(
    mapping: FieldMapping,
    marketo_fields: Sequence[FieldDescription],
    dynamics_columns: Mapping[str, Mapping[str, AttributeMetadata]],
) -> list[FieldProblem]:
    """Every problem of ``mapping`` against the live metadata (empty when it is sound)."""
    by_name = {f.name: f for f in marketo_fields}
    problems: list[FieldProblem] = []
    for entity in ("lead", "contact"):
        columns = dynamics_columns[entity]
        for fmap in mapping.entity(entity).fields:
            where = f"{entity}.{fmap.marketo} -> {fmap.dynamics}"
            problems += _check_marketo(where, fmap, by_name)
            problems += _check_dynamics(where, fmap, columns)
        link_column = columns.get(mapping.links.dynamics_marketo_id)
        if link_column is None or link_column.attribute_type != "String" or not link_column.valid_for_update:
            problems.append(
                FieldProblem(
                    f"links.dynamics_marketo_id ({entity})",
                    "dynamics",
                    f"needs a writable text column {mapping.links.dynamics_marketo_id!r}",
                )
            )
        sync_filter = mapping.options.sync_filter
        if sync_filter and (sync_filter not in columns or columns[sync_filter].attribute_type != "Boolean"):
            problems.append(
                FieldProblem(
                    f"options.sync_filter ({entity})",
                    "dynamics",
                    f"needs a Two Options column {sync_filter!r}",
                )
            )
    links = mapping.links
    for name, expected in (
        (links.marketo_lead_id, "string"),
        (links.marketo_contact_id, "string"),
        (links.marketo_type, "string"),
        (links.marketo_is_deleted, "boolean"),
    ):
        described = by_name.get(name)
        if described is None or described.data_type != expected or not described.updateable:
            problems.append(
                FieldProblem(f"links.{name}", "marketo", f"needs an updateable {expected} field {name!r}")
            )
    return problems
