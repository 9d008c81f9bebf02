"""Check a field mapping against both systems' live metadata. Pure: the caller fetches.

Errors (the mapping cannot work as written): every mapped field that does not exist, whose type
cannot hold the other side's values, or that mdsync would have to write but cannot (read-only
in Marketo, not valid for create or update in Dataverse); option values missing on either side
(a map value Dataverse does not have, a Dataverse option the map does not name: it could never
reach Marketo); a currency column mapped as a bare number, or with a currency the organization
does not have; a date and time mapped onto a date-only column; and the link and sync-filter
fields the sync itself relies on.

Warnings (the mapping works; some values will be reported instead of copied): a Dynamics text
column that holds more characters than its Marketo field (a longer value is not copied to
Marketo, where it would be cut), and a "User Local" date-only column read in UTC because no
time zone is configured.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

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
    FieldType.MONEY: frozenset({"currency", "float"}),
}
DATAVERSE_TYPES: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset({"String", "Memo"}),
    FieldType.EMAIL: frozenset({"String"}),
    FieldType.PHONE: frozenset({"String"}),
    FieldType.BOOLEAN: frozenset({"Boolean"}),
    FieldType.INTEGER: frozenset({"Integer", "BigInt"}),
    FieldType.NUMBER: frozenset({"Decimal", "Double", "Integer"}),
    FieldType.DATE: frozenset({"DateTime"}),
    FieldType.DATETIME: frozenset({"DateTime"}),
    FieldType.OPTION: frozenset({"Picklist", "State", "Status"}),
    FieldType.MONEY: frozenset({"Money"}),
}
TEXT_COLUMNS = frozenset({"String", "Memo"})


@dataclass(frozen=True)
class FieldProblem:
    where: str  # "lead.firstName -> firstname", "links.marketo_lead_id", ...
    system: str  # "marketo" or "dynamics"
    message: str
    severity: Literal["error", "warning"] = "error"

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


def _type_problem(fmap: FieldMap, column: AttributeMetadata) -> str:
    if column.attribute_type == "Money" and fmap.type is not FieldType.MONEY:
        return (
            f"{fmap.dynamics} is a currency column: map it as type money with its currency "
            "(a bare number means nothing without the row's currency)"
        )
    if column.attribute_type not in DATAVERSE_TYPES[fmap.type]:
        return f"{fmap.dynamics} is {column.attribute_type}, not usable as {fmap.type.value}"
    if fmap.type is FieldType.MONEY and fmap.dynamics.endswith("_base"):
        return f"{fmap.dynamics} is the base-currency copy of {fmap.dynamics[:-5]}: map that column"
    if fmap.type is FieldType.DATETIME and column.date_behavior == "DateOnly":
        return f"{fmap.dynamics} holds a date only (DateOnly behaviour): map it as type date"
    return ""


def _check_dynamics(
    where: str, fmap: FieldMap, columns: Mapping[str, AttributeMetadata], currencies: Collection[str]
) -> list[FieldProblem]:
    column = columns.get(fmap.dynamics)
    if column is None:
        return [FieldProblem(where, "dynamics", f"unknown column {fmap.dynamics!r}")]
    problems = []
    wrong_type = _type_problem(fmap, column)
    if wrong_type:
        problems.append(FieldProblem(where, "dynamics", wrong_type))
    if fmap.currency and currencies and fmap.currency not in currencies:
        have = ", ".join(sorted(currencies))
        problems.append(
            FieldProblem(where, "dynamics", f"{fmap.currency} is not a currency of the organization ({have})")
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
        unnamed = sorted(column.options - set(fmap.values))
        if unnamed and fmap.direction.to_marketo:
            problems.append(
                FieldProblem(
                    where,
                    "dynamics",
                    f"options {unnamed} of {fmap.dynamics} have no Marketo value in the mapping: they "
                    "would never reach Marketo (add them to 'values')",
                )
            )
    return problems


def _check_lengths(
    where: str, fmap: FieldMap, described: FieldDescription | None, column: AttributeMetadata | None
) -> list[FieldProblem]:
    """Where Dynamics holds longer text than Marketo, a longer value is reported, not copied."""
    if described is None or column is None or column.attribute_type not in TEXT_COLUMNS:
        return []
    marketo, dynamics = described.length, column.max_length
    if not fmap.direction.to_marketo or marketo is None or dynamics is None or dynamics <= marketo:
        return []
    message = (
        f"{fmap.dynamics} holds {dynamics} characters, {fmap.marketo} {marketo}: a longer value is not "
        "copied to Marketo (which would cut it) and is reported on the person"
    )
    return [FieldProblem(where, "marketo", message, "warning")]


def _check_zone(
    where: str, fmap: FieldMap, mapping: FieldMapping, column: AttributeMetadata | None
) -> list[FieldProblem]:
    local_date = (
        column is not None and column.date_behavior == "UserLocal" and column.date_format == "DateOnly"
    )
    if fmap.type is FieldType.DATE and local_date and (fmap.time_zone or mapping.options.time_zone) == "UTC":
        message = (
            f"{fmap.dynamics} is a User Local date-only column: dates are read in UTC; set "
            "options.time_zone (or the field's time_zone) to the zone your users type them in"
        )
        return [FieldProblem(where, "dynamics", message, "warning")]
    return []


def check_mapping(
    mapping: FieldMapping,
    marketo_fields: Sequence[FieldDescription],
    dynamics_columns: Mapping[str, Mapping[str, AttributeMetadata]],
    currencies: Collection[str] = (),
) -> list[FieldProblem]:
    """Every problem of ``mapping`` against the live metadata (empty when it is sound);
    ``currencies``: the ISO codes of the organization's currencies (empty: not checked)."""
    by_name = {f.name: f for f in marketo_fields}
    problems: list[FieldProblem] = []
    for entity in ("lead", "contact"):
        columns = dynamics_columns[entity]
        for fmap in mapping.entity(entity).fields:
            where = f"{entity}.{fmap.marketo} -> {fmap.dynamics}"
            problems += _check_marketo(where, fmap, by_name)
            problems += _check_dynamics(where, fmap, columns, currencies)
            problems += _check_lengths(where, fmap, by_name.get(fmap.marketo), columns.get(fmap.dynamics))
            problems += _check_zone(where, fmap, mapping, columns.get(fmap.dynamics))
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
