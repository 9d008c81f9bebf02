"""Creating columns and alternate keys through the Web API metadata endpoints.

What `mdsync dynamics setup` sends, answered as the documentation describes it (reference §4):

* ``POST EntityDefinitions(LogicalName='lead')/Attributes`` with a ``StringAttributeMetadata``,
  ``MemoAttributeMetadata`` or ``BooleanAttributeMetadata`` body: ``204 No Content`` and
  ``OData-EntityId: …/Attributes(<MetadataId>)``. The column exists (and is published) at once.
* ``POST EntityDefinitions(LogicalName='lead')/Keys`` with an ``EntityKeyMetadata`` body
  (``SchemaName``, ``DisplayName``, ``KeyAttributes``): ``204``. The key starts ``Pending``
  while a system job builds its index, then turns ``Active`` (after
  ``key_activation_seconds``), or ``Failed`` when existing rows hold duplicate values. Only an
  Active key can address a row or enforce uniqueness.
* ``MSCRM.SolutionUniqueName`` names the unmanaged solution the new component joins.

Schema names must start with a publisher's customization prefix and an underscore. With
``MSCRM.SolutionUniqueName`` the prefix must be that solution's publisher's; without it, the
component lands in the Default Solution and the prefix must be one of the organization's
publishers'. The documentation says the prefix "should" match the solution's publisher; the
simulator is strict about it, so a mismatch shows here before it shows in a real organization.
Error codes for these refusals are not documented: the simulator answers 400 with the generic
``0x80040203`` (InvalidArgument) and a message naming what is wrong.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from simulators.dataverse.engine import Engine
from simulators.dataverse.faults import INVALID_ARGUMENT, DataverseFault
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.schema import AttrType, Column, KeyJob, Table

NS = "Microsoft.Dynamics.CRM."
SOLUTION_HEADER = "mscrm.solutionuniquename"
MAX_KEYS = 10
# Column types an alternate key may use (not Boolean, not Memo).
KEY_TYPES = frozenset(
    {
        AttrType.STRING,
        AttrType.INTEGER,
        AttrType.BIGINT,
        AttrType.DATETIME,
        AttrType.LOOKUP,
        AttrType.PICKLIST,
    }
)
KEY_STATUS_VALUES = {"Pending": 0, "InProgress": 1, "Active": 2, "Failed": 3}


def _invalid(message: str) -> DataverseFault:
    return DataverseFault(400, INVALID_ARGUMENT, message)


def _label_text(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    for item in value.get("LocalizedLabels") or []:
        if isinstance(item, dict) and item.get("Label"):
            return str(item["Label"])
    return ""


def _publisher_prefixes(engine: Engine) -> dict[str, str]:
    """publisherid -> customization prefix."""
    return {
        str(row["publisherid"]): str(row.get("customizationprefix") or "")
        for row in engine.store.rows["publisher"].values()
    }


def _check_prefix(engine: Engine, schema_name: str, req: ApiRequest) -> None:
    prefix, sep, rest = schema_name.partition("_")
    if not sep or not prefix or not rest:
        raise _invalid(
            f"The schema name {schema_name} must start with a publisher's customization prefix and "
            "an underscore."
        )
    prefixes = _publisher_prefixes(engine)
    solution_name = req.headers.get(SOLUTION_HEADER)
    if solution_name:
        solution = next(
            (r for r in engine.store.rows["solution"].values() if r.get("uniquename") == solution_name), None
        )
        if solution is None:
            raise DataverseFault(404, INVALID_ARGUMENT, f"The solution {solution_name} does not exist.")
        ref = solution.get("publisherid")
        expected = prefixes.get(str(getattr(ref, "id", "")), "")
        if prefix.lower() != expected.lower():
            raise _invalid(
                f"The schema name {schema_name} does not start with the customization prefix "
                f"'{expected}' of the publisher of solution {solution_name}."
            )
    elif prefix.lower() not in {p.lower() for p in prefixes.values()}:
        raise _invalid(f"No publisher in this organization has the customization prefix '{prefix}'.")


def create_attribute(engine: Engine, table: Table, req: ApiRequest) -> ApiResponse:
    body = req.json("EntityDefinitions")
    if not isinstance(body, dict):
        raise _invalid("The attribute definition must be a JSON object.")
    kind = str(body.get("@odata.type", "")).lstrip("#").removeprefix(NS)
    schema_name = str(body.get("SchemaName") or "")
    if not schema_name:
        raise _invalid("SchemaName is required.")
    _check_prefix(engine, schema_name, req)
    logical = schema_name.lower()
    required = str((body.get("RequiredLevel") or {}).get("Value") or "None")
    display = _label_text(body.get("DisplayName")) or schema_name
    if kind == "StringAttributeMetadata":
        max_length = int(body.get("MaxLength") or 100)
        if not 1 <= max_length <= 4000:
            raise _invalid("MaxLength must be between 1 and 4000.")
        fmt = str((body.get("FormatName") or {}).get("Value") or "Text")
        column = Column(logical, AttrType.STRING, max_length=max_length, format=fmt, required=required)
    elif kind == "MemoAttributeMetadata":
        column = Column(
            logical, AttrType.MEMO, max_length=int(body.get("MaxLength") or 2000), format="TextArea"
        )
    elif kind == "BooleanAttributeMetadata":
        option_set = body.get("OptionSet") or {}
        labels = (
            _label_text((option_set.get("FalseOption") or {}).get("Label")) or "No",
            _label_text((option_set.get("TrueOption") or {}).get("Label")) or "Yes",
        )
        column = Column(logical, AttrType.BOOLEAN, bool_labels=labels, default=bool(body.get("DefaultValue")))
    else:
        raise _invalid(f"The simulator creates String, Memo and Boolean columns, not '{kind or 'untyped'}'.")
    column.schema_name = schema_name
    column.display_name = display
    column.required = required
    column.metadata_id = str(uuid.uuid4())
    with engine.store.lock:
        if logical in table.columns:
            raise _invalid(
                f"An attribute with the name {schema_name} already exists on {table.logical_name}."
            )
        table.columns[logical] = column
        # Rows that existed before the column have no value in it (null), whatever its default.
        for row in engine.store.rows[table.logical_name].values():
            row.setdefault(logical, None)
    definition = f"{req.service_root}/EntityDefinitions(LogicalName='{table.logical_name}')"
    entity_id = f"{definition}/Attributes({column.metadata_id})"
    return ApiResponse(204, {"OData-EntityId": entity_id})


def create_key(engine: Engine, table: Table, req: ApiRequest, *, activation_seconds: float) -> ApiResponse:
    body = req.json("EntityDefinitions")
    if not isinstance(body, dict):
        raise _invalid("The key definition must be a JSON object.")
    schema_name = str(body.get("SchemaName") or "")
    columns = body.get("KeyAttributes")
    if not schema_name or not isinstance(columns, list) or not columns:
        raise _invalid("SchemaName and KeyAttributes are required.")
    _check_prefix(engine, schema_name, req)
    names = tuple(str(c).lower() for c in columns)
    for name in names:
        column = table.columns.get(name)
        if column is None:
            raise _invalid(f"The key attribute {name} does not exist on {table.logical_name}.")
        if column.type not in KEY_TYPES:
            raise _invalid(f"A {column.type.value} column ({name}) cannot be part of an alternate key.")
    logical = schema_name.lower()
    with engine.store.lock:
        existing = {**table.alternate_keys, **{k: j.columns for k, j in table.key_jobs.items()}}
        if logical in existing:
            raise _invalid(f"A key with the name {schema_name} already exists on {table.logical_name}.")
        if any(set(cols) == set(names) for cols in existing.values()):
            raise _invalid(f"A key on the columns {', '.join(names)} already exists on {table.logical_name}.")
        if len(existing) >= MAX_KEYS:
            raise _invalid(f"A table has at most {MAX_KEYS} alternate keys.")
        job = KeyJob(names, schema_name, str(uuid.uuid4()), time.monotonic() + activation_seconds)
        table.key_jobs[logical] = job
    entity_id = (
        f"{req.service_root}/EntityDefinitions(LogicalName='{table.logical_name}')/Keys({job.metadata_id})"
    )
    return ApiResponse(204, {"OData-EntityId": entity_id})


def activate_due_keys(engine: Engine) -> None:
    """Finish the index jobs whose time has come: Active, or Failed on duplicate values."""
    now = time.monotonic()
    with engine.store.lock:
        for table in engine.tables.values():
            for name, job in list(table.key_jobs.items()):
                if job.status != "Pending" or job.ready_at > now:
                    continue
                if _has_duplicates(engine, table, job.columns):
                    job.status = "Failed"
                    continue
                del table.key_jobs[name]
                table.alternate_keys[name] = job.columns
                for row_id, row in engine.store.rows[table.logical_name].items():
                    engine.store.index_row(table.logical_name, row_id, row)


def _has_duplicates(engine: Engine, table: Table, columns: tuple[str, ...]) -> bool:
    seen = set()
    for row in engine.store.rows[table.logical_name].values():
        values = tuple(row.get(c) for c in columns)
        if any(v is None for v in values):
            continue
        folded = tuple(v.casefold() if isinstance(v, str) else v for v in values)
        if folded in seen:
            return True
        seen.add(folded)
    return False


def keys_json(table: Table) -> list[dict[str, Any]]:
    """``EntityKeyMetadata`` of every key, active or not."""
    items = []
    for name, columns in table.alternate_keys.items():
        items.append(_key(name, name, columns, "Active", _key_id(table, name)))
    for name, job in table.key_jobs.items():
        items.append(_key(name, job.schema_name, job.columns, job.status, job.metadata_id))
    return items


def _key_id(table: Table, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mdsync-sim:{table.logical_name}:key:{name}"))


def _key(name: str, schema: str, columns: tuple[str, ...], status: str, metadata_id: str) -> dict[str, Any]:
    return {
        "MetadataId": metadata_id,
        "LogicalName": name,
        "SchemaName": schema,
        "KeyAttributes": list(columns),
        "EntityKeyIndexStatus": status,
        "IsManaged": False,
    }
