"""``EntityDefinitions`` (table and column metadata) and a minimal ``$metadata`` document.

Supported: ``EntityDefinitions`` (with ``$select``/``$filter``), ``EntityDefinitions(LogicalName='x')``
or ``(<MetadataId>)``, ``/Attributes`` with or without a cast segment
(``Microsoft.Dynamics.CRM.StringAttributeMetadata`` ...), ``/Attributes(LogicalName='x')``,
``$expand=OptionSet``, ``.../OptionSet``, and ``/Keys`` (with ``EntityKeyIndexStatus``).
Type-specific properties (MaxLength, FormatName...) can be selected only under their cast
segment, as in the real service. ``POST`` on ``/Attributes`` and ``/Keys`` creates a column or an
alternate key (:mod:`simulators.dataverse.customization`).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from simulators.dataverse.customization import create_attribute, create_key, keys_json
from simulators.dataverse.engine import Engine
from simulators.dataverse.faults import odata_error
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.odata import evaluate, parse_filter, parse_key, parse_select, split_name_and_key
from simulators.dataverse.schema import EDM_TYPES, LOOKUP_TYPES, OPTION_TYPES, AttrType, Column, Table

NS = "Microsoft.Dynamics.CRM."
CAST_BY_TYPE = {
    AttrType.STRING: "StringAttributeMetadata",
    AttrType.MEMO: "MemoAttributeMetadata",
    AttrType.PICKLIST: "PicklistAttributeMetadata",
    AttrType.STATE: "StateAttributeMetadata",
    AttrType.STATUS: "StatusAttributeMetadata",
    AttrType.BOOLEAN: "BooleanAttributeMetadata",
    AttrType.LOOKUP: "LookupAttributeMetadata",
    AttrType.OWNER: "LookupAttributeMetadata",
    AttrType.CUSTOMER: "LookupAttributeMetadata",
    AttrType.DATETIME: "DateTimeAttributeMetadata",
    AttrType.INTEGER: "IntegerAttributeMetadata",
    AttrType.BIGINT: "BigIntAttributeMetadata",
    AttrType.DECIMAL: "DecimalAttributeMetadata",
    AttrType.MONEY: "MoneyAttributeMetadata",
    AttrType.UNIQUEIDENTIFIER: "UniqueIdentifierAttributeMetadata",
}
ENTITY_PROPS = (
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "LogicalCollectionName",
    "PrimaryIdAttribute",
    "PrimaryNameAttribute",
    "ObjectTypeCode",
    "IsOptimisticConcurrencyEnabled",
    "ChangeTrackingEnabled",
    "IsCustomEntity",
    "IsPrivate",
    "IsActivity",
    "OwnershipType",
    "DisplayName",
)
BASE_ATTR_PROPS = (
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntityLogicalName",
    "AttributeType",
    "AttributeTypeName",
    "RequiredLevel",
    "IsValidForCreate",
    "IsValidForUpdate",
    "IsValidForRead",
    "IsCustomAttribute",
    "IsPrimaryId",
    "IsPrimaryName",
    "AttributeOf",
    "DisplayName",
)
CAST_PROPS = {
    "StringAttributeMetadata": ("MaxLength", "FormatName", "Format", "DatabaseLength"),
    "MemoAttributeMetadata": ("MaxLength", "Format"),
    "PicklistAttributeMetadata": ("DefaultFormValue",),
    "StateAttributeMetadata": ("DefaultFormValue",),
    "StatusAttributeMetadata": ("DefaultFormValue",),
    "BooleanAttributeMetadata": ("DefaultValue",),
    "LookupAttributeMetadata": ("Targets",),
    "DateTimeAttributeMetadata": ("Format", "DateTimeBehavior"),
    "IntegerAttributeMetadata": ("MinValue", "MaxValue", "Format"),
    "BigIntAttributeMetadata": ("MinValue", "MaxValue"),
    "DecimalAttributeMetadata": ("MinValue", "MaxValue", "Precision"),
    "MoneyAttributeMetadata": ("MinValue", "MaxValue", "Precision"),
    "UniqueIdentifierAttributeMetadata": (),
}
OPTION_CASTS = {
    "PicklistAttributeMetadata",
    "StateAttributeMetadata",
    "StatusAttributeMetadata",
    "BooleanAttributeMetadata",
}
_FORMAT_CODES = {"Email": 0, "Text": 1, "TextArea": 2, "Url": 3, "Phone": 7}


def label(text: str) -> dict[str, Any]:
    localized = {
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": False,
        "MetadataId": None,
        "HasChanged": None,
    }
    return {"LocalizedLabels": [localized] if text else [], "UserLocalizedLabel": localized if text else None}


def entity_json(table: Table) -> dict[str, Any]:
    return {
        "MetadataId": table.metadata_id,
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": table.object_type_code,
        "IsOptimisticConcurrencyEnabled": True,
        "ChangeTrackingEnabled": table.change_tracking,
        "IsCustomEntity": table.custom,
        "IsPrivate": False,
        "IsActivity": False,
        "OwnershipType": "UserOwned" if table.user_owned else "OrganizationOwned",
        "DisplayName": label(table.schema_name),
    }


def _option(value: int, text: str, column: Column) -> dict[str, Any]:
    option: dict[str, Any] = {
        "Value": value,
        "Color": None,
        "IsManaged": False,
        "ExternalValue": None,
        "ParentValues": [],
        "MetadataId": None,
        "HasChanged": None,
        "Label": label(text),
        "Description": label(""),
    }
    if column.type is AttrType.STATUS:
        option["State"] = column.status_state.get(value)
    if column.type is AttrType.STATE:
        option["DefaultStatus"] = column.state_default_status.get(value)
        option["InvariantName"] = text
    return option


def option_set(table: Table, column: Column) -> dict[str, Any]:
    base = {
        "MetadataId": column.metadata_id,
        "Name": f"{table.logical_name}_{column.name}",
        "IsGlobal": False,
        "IsCustomOptionSet": False,
        "DisplayName": label(column.display_name),
    }
    if column.type is AttrType.BOOLEAN:
        false_label, true_label = column.bool_labels
        return {
            **base,
            "OptionSetType": "Boolean",
            "TrueOption": _option(1, true_label, column),
            "FalseOption": _option(0, false_label, column),
        }
    return {
        **base,
        "OptionSetType": column.type.value,
        "Options": [_option(v, t, column) for v, t in column.options.items()],
    }


def attribute_json(table: Table, column: Column) -> dict[str, Any]:
    cast = CAST_BY_TYPE[column.type]
    out: dict[str, Any] = {
        "@odata.type": f"#{NS}{cast}",
        "MetadataId": column.metadata_id,
        "LogicalName": column.name,
        "SchemaName": column.schema_name,
        "EntityLogicalName": table.logical_name,
        "AttributeType": column.type.value,
        "AttributeTypeName": {"Value": f"{column.type.value}Type"},
        "RequiredLevel": {
            "Value": column.required,
            "CanBeChanged": column.required != "SystemRequired",
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
        "IsValidForCreate": column.valid_create,
        "IsValidForUpdate": column.valid_update,
        "IsValidForRead": column.valid_read,
        "IsCustomAttribute": column.name.startswith(("mdsync_", "new_")),
        "IsPrimaryId": column.name == table.primary_id,
        "IsPrimaryName": column.name == table.primary_name,
        "AttributeOf": None,
        "DisplayName": label(column.display_name),
    }
    if column.type in (AttrType.STRING, AttrType.MEMO):
        out["MaxLength"] = column.max_length
        out["Format"] = column.format
        if column.type is AttrType.STRING:
            out["FormatName"] = {"Value": column.format or "Text"}
            out["DatabaseLength"] = (column.max_length or 0) * 2
    elif column.type in OPTION_TYPES:
        out["DefaultFormValue"] = column.default if column.default is not None else -1
    elif column.type is AttrType.BOOLEAN:
        out["DefaultValue"] = bool(column.default)
    elif column.type in LOOKUP_TYPES:
        out["Targets"] = list(column.targets)
    elif column.type is AttrType.DATETIME:
        out["Format"] = column.date_format
        out["DateTimeBehavior"] = {"Value": column.date_behavior}
    elif column.type is AttrType.INTEGER:
        out.update(MinValue=-2147483648, MaxValue=2147483647, Format="None")
    elif column.type is AttrType.BIGINT:
        out.update(MinValue=-9223372036854775808, MaxValue=9223372036854775807)
    elif column.type is AttrType.MONEY:
        out.update(MinValue=-922337203685477, MaxValue=922337203685477, Precision=2)
    elif column.type is AttrType.DECIMAL:
        out.update(MinValue=-100000000000, MaxValue=100000000000, Precision=10)
    return out


def _project(
    item: dict[str, Any], select: list[str] | None, allowed: set[str], type_name: str
) -> dict[str, Any]:
    if select is None:
        return item
    for name in select:
        if name not in allowed:
            raise odata_error(f"Could not find a property named '{name}' on type '{NS}{type_name}'.")
    keep = {"@odata.type", "MetadataId", *select}
    return {k: v for k, v in item.items() if k in keep}


def _dict_getter(item: Any, path: tuple[str, ...]) -> Any:
    value = item
    for segment in path:
        value = value.get(segment) if isinstance(value, dict) else None
    return value


def _filtered(items: list[dict[str, Any]], req: ApiRequest, allowed: set[str]) -> list[dict[str, Any]]:
    text = req.query.get("$filter")
    if not text:
        return items

    def check(path: tuple[str, ...]) -> str:
        if path[0] not in allowed:
            raise odata_error(f"Could not find a property named '{path[0]}' on type '{NS}EntityMetadata'.")
        return "any"

    node = parse_filter(text, check)
    return [i for i in items if evaluate(node, i, _dict_getter)]


def _expand(item: dict[str, Any], table: Table, column: Column, req: ApiRequest) -> None:
    spec = req.query.get("$expand", "")
    names = {part.split("(", 1)[0].strip() for part in spec.split(",") if part.strip()}
    for name in names:
        if name not in ("OptionSet", "GlobalOptionSet"):
            raise odata_error(f"Could not find a property named '{name}' on type '{NS}AttributeMetadata'.")
        if name == "OptionSet":
            item["OptionSet"] = option_set(table, column)
        else:
            item["GlobalOptionSet"] = None


KEY_PROPS = ("MetadataId", "LogicalName", "SchemaName", "KeyAttributes", "EntityKeyIndexStatus", "IsManaged")


class MetadataApi:
    def __init__(self, engine: Engine, *, key_activation_seconds: float = 0.0) -> None:
        self.engine = engine
        self.tables = engine.tables
        self.key_activation_seconds = key_activation_seconds

    def _table(self, key_text: str) -> Table:
        key = parse_key(key_text)
        if key.primary is not None:
            found = next((t for t in self.tables.values() if t.metadata_id == key.primary), None)
        else:
            found = self.tables.get(str(key.named.get("LogicalName", "")))
        if found is None:
            raise odata_error(f"Could not find entity with key '{key_text}'.", status=404)
        return found

    def handle(self, segments: list[str], req: ApiRequest) -> ApiResponse:
        if req.method == "POST" and len(segments) == 2:
            return self._create(segments, req)
        if req.method != "GET":
            raise odata_error("This metadata change is not supported by this simulator.", status=405)
        root = f"{req.service_root}/$metadata#EntityDefinitions"
        _, key_text = split_name_and_key(segments[0])
        select = parse_select(req.query["$select"]) if req.query.get("$select") else None
        if key_text is None:
            items = [entity_json(t) for t in self.tables.values()]
            items = _filtered(items, req, set(ENTITY_PROPS))
            value = [_project(i, select, set(ENTITY_PROPS), "EntityMetadata") for i in items]
            return ApiResponse.json(200, {"@odata.context": root, "value": value})
        table = self._table(key_text)
        if len(segments) == 1:
            body = _project(entity_json(table), select, set(ENTITY_PROPS), "EntityMetadata")
            return ApiResponse.json(200, {"@odata.context": f"{root}/$entity", **body})
        nav, attr_key = split_name_and_key(segments[1])
        if nav == "Keys":
            keys = [_project(k, select, set(KEY_PROPS), "EntityKeyMetadata") for k in keys_json(table)]
            return ApiResponse.json(
                200, {"@odata.context": f"{root}('{table.logical_name}')/Keys", "value": keys}
            )
        if nav != "Attributes":
            raise odata_error(f"Resource not found for the segment '{nav}'.", status=404)
        return self._attributes(table, attr_key, segments[2:], select, req)

    def _create(self, segments: list[str], req: ApiRequest) -> ApiResponse:
        _, key_text = split_name_and_key(segments[0])
        nav, attr_key = split_name_and_key(segments[1])
        if key_text is None or attr_key is not None or nav not in ("Attributes", "Keys"):
            raise odata_error("This metadata change is not supported by this simulator.", status=405)
        table = self._table(key_text)
        if nav == "Attributes":
            return create_attribute(self.engine, table, req)
        return create_key(self.engine, table, req, activation_seconds=self.key_activation_seconds)

    def _attributes(
        self,
        table: Table,
        attr_key: str | None,
        rest: list[str],
        select: list[str] | None,
        req: ApiRequest,
    ) -> ApiResponse:
        cast = None
        if rest and rest[0].startswith(NS):
            cast = rest[0][len(NS) :]
            if cast not in CAST_PROPS:
                raise odata_error(f"The type '{rest[0]}' is not a valid cast for attributes.")
            rest = rest[1:]
        allowed = set(BASE_ATTR_PROPS) | set(CAST_PROPS.get(cast or "", ()))
        columns = list(table.columns.values())
        if attr_key is not None:
            key = parse_key(attr_key)
            wanted = key.named.get("LogicalName") or key.primary
            columns = [c for c in columns if wanted in (c.name, c.metadata_id)]
            if not columns:
                raise odata_error(f"Could not find attribute with key '{attr_key}'.", status=404)
        if cast is not None:
            columns = [c for c in columns if CAST_BY_TYPE[c.type] == cast]
            if attr_key is not None and not columns:
                raise odata_error(f"The attribute is not of type '{NS}{cast}'.", status=404)
        if rest == ["OptionSet"] and columns and cast in OPTION_CASTS:
            return ApiResponse.json(200, option_set(table, columns[0]))
        if rest:
            raise odata_error(f"Resource not found for the segment '{rest[0]}'.", status=404)
        by_name = {c.name: c for c in columns}
        full = _filtered([attribute_json(table, c) for c in columns], req, allowed)
        items = []
        for found in full:
            column = by_name[found["LogicalName"]]
            item = found if select is None else _project(found, select, allowed, cast or "AttributeMetadata")
            if req.query.get("$expand"):
                if cast not in OPTION_CASTS:
                    raise odata_error(
                        f"Could not find a property named 'OptionSet' on type '{NS}AttributeMetadata'."
                    )
                _expand(item, table, column, req)
            items.append(item)
        context = f"{req.service_root}/$metadata#EntityDefinitions('{table.logical_name}')/Attributes"
        if cast:
            context += f"/{NS}{cast}"
        if attr_key is not None:
            return ApiResponse.json(200, {"@odata.context": f"{context}/$entity", **items[0]})
        return ApiResponse.json(200, {"@odata.context": context, "value": items})


def csdl(tables: dict[str, Table]) -> bytes:
    """A small CSDL document: entity types, keys, properties, navigation, entity sets."""
    types, sets = [], []
    for table in tables.values():
        props = [f'<Key><PropertyRef Name="{table.primary_id}" /></Key>']
        for column in table.columns.values():
            if column.type in LOOKUP_TYPES:
                props.append(f'<Property Name="{column.lookup_property}" Type="Edm.Guid" />')
                for nav, target in column.navigation.items():
                    if target in tables:
                        props.append(f'<NavigationProperty Name="{nav}" Type="mscrm.{target}" />')
            else:
                edm = "Edm.Date" if column.date_behavior == "DateOnly" else EDM_TYPES[column.type]
                props.append(f'<Property Name="{column.name}" Type="{edm}" />')
        types.append(f'<EntityType Name="{table.logical_name}">{"".join(props)}</EntityType>')
        sets.append(
            f'<EntitySet Name="{table.entity_set}" EntityType="mscrm.{escape(table.logical_name)}" />'
        )
    document = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">'
        "<edmx:DataServices>"
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        + "".join(types)
        + '<EntityContainer Name="System">'
        + "".join(sets)
        + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )
    return document.encode("utf-8")
