"""Web API routing: resource paths to reads, writes, bound actions, metadata and ``$batch``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from simulators.dataverse import batch, bypass
from simulators.dataverse.bypass import BypassPolicy
from simulators.dataverse.customization import activate_due_keys
from simulators.dataverse.engine import Engine
from simulators.dataverse.faults import (
    BULK_NOT_SUPPORTED,
    CONCURRENCY_VERSION_MISMATCH,
    DUPLICATE_RECORD,
    DataverseFault,
    not_found,
    not_found_by_key,
    odata_error,
    payload_error,
)
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.metadata import MetadataApi, csdl
from simulators.dataverse.odata import KeySegment, parse_key, split_name_and_key, split_segments
from simulators.dataverse.query import CollectionQuery, count_rows, get_row, selected_columns
from simulators.dataverse.representation import AnnotationFilter, etag, represent
from simulators.dataverse.schema import Table
from simulators.dataverse.store import Row

NS = "Microsoft.Dynamics.CRM."
BULK_ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


def endpoint_label(method: str, path: str) -> str:
    """``PATCH leads(…)`` -> ``PATCH leads()``: the name calls are counted under."""
    parts = []
    for segment in split_segments(path):
        name, key = split_name_and_key(segment)
        parts.append(name.removeprefix(NS) + ("()" if key is not None else ""))
    return f"{method} {'/'.join(parts) or '/'}"


class WebApi:
    def __init__(
        self,
        engine: Engine,
        *,
        bulk_tables: set[str],
        who_am_i: Callable[[str], dict[str, Any]],
        count: Callable[[str], None],
        key_activation_seconds: float = 0.0,
        bypass: BypassPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.bypass = bypass or BypassPolicy()
        self.metadata = MetadataApi(engine, key_activation_seconds=key_activation_seconds)
        self.bulk_tables = bulk_tables
        self.who_am_i = who_am_i
        self.count = count

    def dispatch(self, req: ApiRequest) -> ApiResponse:
        """Answer one request; a DataverseFault becomes the error envelope."""
        activate_due_keys(self.engine)
        try:
            self.bypass.apply(req)
            return self._route(req)
        except DataverseFault as fault:
            annotations = AnnotationFilter(req.prefer.get("odata.include-annotations")).any
            return ApiResponse.fault(fault, annotations=annotations)

    def _route(self, req: ApiRequest) -> ApiResponse:
        if req.in_batch:
            self.count(f"$batch {endpoint_label(req.method, req.path)}")
        segments = split_segments(req.path)
        if not segments:
            return self._service_document(req)
        head = segments[0]
        if head == "$batch":
            return self._batch(req)
        if head == "$metadata":
            return ApiResponse(200, {"Content-Type": "application/xml"}, csdl(self.engine.tables))
        if head.startswith("EntityDefinitions"):
            return self.metadata.handle(segments, req)
        if head in ("Merge", f"{NS}Merge") and len(segments) == 1:
            if req.method != "POST":
                raise _method_not_allowed(req)
            return self._merge(req)
        if head in ("WhoAmI", "WhoAmI()"):
            return ApiResponse.json(
                200,
                {
                    "@odata.context": f"{req.service_root}/$metadata#{NS}WhoAmIResponse",
                    **self.who_am_i(req.caller.user_id),
                },
            )
        if head.startswith(("RetrieveTotalRecordCount(", f"{NS}RetrieveTotalRecordCount(")):
            return self._record_counts(head, req)
        name, key_text = split_name_and_key(head)
        table = self.engine.table_by_set(name)
        rest = segments[1:]
        if key_text is None:
            return self._collection(table, rest, req)
        return self._single(table, parse_key(key_text), rest, req)

    def _record_counts(self, head: str, req: ApiRequest) -> ApiResponse:
        """RetrieveTotalRecordCount(EntityNames=@p1)?@p1=["lead","contact"]: row counts per
        table. Dataverse answers from a snapshot taken in the last 24 hours; the simulator counts
        now (an estimate either way: the backfill uses it for its ETA only)."""
        if req.method != "GET":
            raise _method_not_allowed(req)
        argument = head.split("(", 1)[1].rstrip(")")
        name, _, value = argument.partition("=")
        if name.strip() != "EntityNames" or not value:
            raise odata_error("RetrieveTotalRecordCount takes one parameter, EntityNames")
        text = req.query.get(value, "") if value.startswith("@") else value
        try:
            names = json.loads(text.replace("'", '"'))
        except ValueError:
            raise odata_error(f"EntityNames is not a list of table names: {text!r}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise odata_error("EntityNames must be a list of table logical names")
        counts = []
        with self.engine.store.lock:
            for logical in names:
                if logical not in self.engine.tables:
                    raise odata_error(
                        f"The entity with a name = '{logical}' was not found in the MetadataCache."
                    )
                counts.append(len(self.engine.store.rows[logical]))
        collection = {"Count": len(names), "IsReadOnly": False, "Keys": names, "Values": counts}
        context = f"{req.service_root}/$metadata#{NS}RetrieveTotalRecordCountResponse"
        return ApiResponse.json(200, {"@odata.context": context, "EntityRecordCountCollection": collection})

    def _service_document(self, req: ApiRequest) -> ApiResponse:
        value = [
            {"name": t.entity_set, "kind": "EntitySet", "url": t.entity_set}
            for t in self.engine.tables.values()
        ]
        return ApiResponse.json(200, {"@odata.context": f"{req.service_root}/$metadata", "value": value})

    # --- collections --------------------------------------------------------------------

    def _collection(self, table: Table, rest: list[str], req: ApiRequest) -> ApiResponse:
        if not rest:
            if req.method == "GET":
                return CollectionQuery(self.engine, table, req).run()
            if req.method == "POST":
                return self._create(table, req)
            raise _method_not_allowed(req)
        if rest == ["$count"] and req.method == "GET":
            return count_rows(self.engine, table)
        action = rest[0].removeprefix(NS) if rest[0].startswith(NS) else None
        if len(rest) == 1 and action in BULK_ACTIONS and req.method == "POST":
            return self._bulk(table, action, req)
        raise odata_error(f"Resource not found for the segment '{rest[0]}'.", status=404)

    def _create(self, table: Table, req: ApiRequest) -> ApiResponse:
        body = req.json(table.entity_set)
        with self.engine.transaction(req.tx) as tx:
            values, submitted = self.engine.parse_payload(
                table, body, creating=True, content_ids=req.content_ids
            )
            row = self.engine.create(tx, table, values, submitted, req.caller)
        return self._written(table, row, req, created=True)

    def _written(self, table: Table, row: Row, req: ApiRequest, *, created: bool) -> ApiResponse:
        entity_id = f"{req.service_root}/{table.entity_set}({row[table.primary_id]})"
        if req.prefer.get("return") == "representation":
            columns = selected_columns(table, req)
            annotations = AnnotationFilter(req.prefer.get("odata.include-annotations"))
            names = req.query.get("$select")
            context = f"{req.service_root}/$metadata#{table.entity_set}"
            context += f"({names})/$entity" if names else "/$entity"
            body = {
                "@odata.context": context,
                **represent(table, row, columns, annotations, self.engine.name_of),
            }
            return ApiResponse.json(
                201 if created else 200,
                body,
                {"Preference-Applied": "return=representation", "ETag": etag(row)},
            )
        return ApiResponse(204, {"OData-EntityId": entity_id, "ETag": etag(row)})

    # --- single rows --------------------------------------------------------------------

    def _single(self, table: Table, key: KeySegment, rest: list[str], req: ApiRequest) -> ApiResponse:
        if rest:
            if rest == [f"{NS}QualifyLead"] and table.logical_name == "lead" and req.method == "POST":
                return self._qualify(table, key, req)
            if table.logical_name == "systemuser" and req.method == "GET" and len(rest) == 1:
                return self._user_privilege(key, rest[0], req)
            raise odata_error(f"Resource not found for the segment '{rest[0]}'.", status=404)
        if req.method == "GET":
            row_id = self.engine.locate(table, key)
            row = self.engine.store.get(table.logical_name, row_id) if row_id else None
            if row is None:
                raise _missing(table, key)
            return get_row(self.engine, table, row, req)
        if req.method == "PATCH":
            return self._patch(table, key, req)
        if req.method == "DELETE":
            return self._delete(table, key, req)
        raise _method_not_allowed(req)

    def _patch(self, table: Table, key: KeySegment, req: ApiRequest) -> ApiResponse:
        body = req.json(table.entity_set)
        if_match = req.headers.get("if-match")
        create_only = req.headers.get("if-none-match") == "*"
        with self.engine.transaction(req.tx) as tx:
            row, created = self._upsert(tx, table, key, body, req, if_match=if_match, create_only=create_only)
        return self._written(table, row, req, created=created)

    def _upsert(
        self,
        tx: Any,
        table: Table,
        key: KeySegment,
        body: Any,
        req: ApiRequest,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> tuple[Row, bool]:
        engine = self.engine
        row_id = engine.locate(table, key)
        key_values = {k: v for k, v in key.named.items() if k != table.primary_id}
        if row_id is not None:
            if create_only:
                raise DataverseFault(
                    412, DUPLICATE_RECORD, "A record with matching key values already exists."
                )
            _check_etag(engine.store.get(table.logical_name, row_id), if_match)
            values, submitted = engine.parse_payload(table, body, creating=False, content_ids=req.content_ids)
            # Keys cannot be changed through the key that addresses the row.
            values = {k: v for k, v in values.items() if k not in key_values}
            submitted = tuple(c for c in submitted if c not in key_values)
            row = engine.update(
                tx, table, row_id, values, submitted=submitted, caller=req.caller, key_values=key_values
            )
            return row, False
        if if_match:
            raise _missing(table, key)
        values, submitted = engine.parse_payload(table, body, creating=True, content_ids=req.content_ids)
        new_id = key.primary or key.named.get(table.primary_id)
        row = engine.create(
            tx,
            table,
            values,
            submitted,
            req.caller,
            row_id=str(new_id) if new_id else None,
            key_values=key_values,
        )
        return row, True

    def _delete(self, table: Table, key: KeySegment, req: ApiRequest) -> ApiResponse:
        with self.engine.transaction(req.tx) as tx:
            row_id = self.engine.locate(table, key)
            if row_id is None:
                raise _missing(table, key)
            row = self.engine.store.get(table.logical_name, row_id)
            _check_etag(row, req.headers.get("if-match"))
            self.engine.delete(tx, table, row_id, req.caller)
        return ApiResponse(204, {})

    def _user_privilege(self, key: KeySegment, function: str, req: ApiRequest) -> ApiResponse:
        """``systemusers(id)/RetrieveUserPrivilegeByPrivilegeName(PrivilegeName='...')``: the
        user's grants of that privilege (none when not held). Only prvBypassCustomBusinessLogic
        is modelled."""
        name = bypass.privilege_asked(function.removeprefix(NS))
        user_id = key.primary or ""
        if self.engine.store.get("systemuser", user_id) is None:
            raise not_found("systemuser", user_id)
        held = self.bypass.holds(user_id)
        grants = (
            [{"Depth": "Global", "PrivilegeId": bypass.PRIVILEGE_ID, "PrivilegeName": name}] if held else []
        )
        context = f"{req.service_root}/$metadata#{NS}RetrieveUserPrivilegeByPrivilegeNameResponse"
        return ApiResponse.json(200, {"@odata.context": context, "RolePrivileges": grants})

    def _qualify(self, table: Table, key: KeySegment, req: ApiRequest) -> ApiResponse:
        params = req.json(table.entity_set)
        with self.engine.transaction(req.tx) as tx:
            row_id = self.engine.locate(table, key)
            if row_id is None:
                raise _missing(table, key)
            refs = self.engine.qualify(tx, row_id, params, req.caller)
        value = [{"@odata.type": f"#{NS}{ref.logical}", f"{ref.logical}id": ref.id} for ref in refs]
        return ApiResponse.json(
            200,
            {
                "@odata.context": f"{req.service_root}/$metadata#Collection({NS}crmbaseentity)",
                "value": value,
            },
        )

    def _merge(self, req: ApiRequest) -> ApiResponse:
        params = req.json("Merge")
        with self.engine.transaction(req.tx) as tx:
            self.engine.merge(tx, params, req.caller)
        return ApiResponse(204, {"OData-Version": "4.0"})

    # --- bulk messages ------------------------------------------------------------------

    def _bulk(self, table: Table, action: str, req: ApiRequest) -> ApiResponse:
        if table.logical_name not in self.bulk_tables:
            raise DataverseFault(
                400,
                BULK_NOT_SUPPORTED,
                f"The '{action}' method does not support entities of type '{table.logical_name}'.",
            )
        body = req.json(table.entity_set)
        targets = body.get("Targets") if isinstance(body, dict) else None
        if not isinstance(targets, list) or not targets or not all(isinstance(t, dict) for t in targets):
            raise payload_error(table.entity_set, f"'{action}' needs a non-empty 'Targets' array.")
        wanted = f"{NS}{table.logical_name}"
        for target in targets:
            if str(target.get("@odata.type", "")).lstrip("#") != wanted:
                raise payload_error(
                    table.entity_set,
                    f'Every item in Targets must have "@odata.type": "{wanted}".',
                )
        with self.engine.transaction(req.tx) as tx:
            if action == "CreateMultiple":
                ids = []
                for target in targets:
                    values, submitted = self.engine.parse_payload(table, target, creating=True)
                    ids.append(self.engine.create(tx, table, values, submitted, req.caller)[table.primary_id])
                return ApiResponse.json(
                    200,
                    {
                        "@odata.context": f"{req.service_root}/$metadata#{NS}CreateMultipleResponse",
                        "Ids": ids,
                    },
                )
            if action == "UpdateMultiple":
                self._update_multiple(tx, table, targets, req)
            else:
                self._upsert_multiple(tx, table, targets, req)
        return ApiResponse(204, {})

    def _update_multiple(self, tx: Any, table: Table, targets: list[dict[str, Any]], req: ApiRequest) -> None:
        seen: set[str] = set()
        for target in targets:
            row_id = str(target.get(table.primary_id) or "").lower()
            if not row_id:
                raise payload_error(
                    table.entity_set, f"Every item in Targets must contain '{table.primary_id}'."
                )
            if row_id in seen:
                continue  # the platform applies the first and ignores later duplicates
            seen.add(row_id)
            if self.engine.store.get(table.logical_name, row_id) is None:
                raise not_found(table.logical_name, row_id)
            values, submitted = self.engine.parse_payload(table, target, creating=False)
            self.engine.update(tx, table, row_id, values, submitted=submitted, caller=req.caller)

    def _upsert_multiple(self, tx: Any, table: Table, targets: list[dict[str, Any]], req: ApiRequest) -> None:
        seen: set[str] = set()
        for target in targets:
            address = target.get("@odata.id")
            if isinstance(address, str):
                path = (
                    address.split("/api/data/", 1)[-1].split("/", 1)[-1]
                    if "/api/data/" in address
                    else address
                )
                name, key_text = split_name_and_key(path.lstrip("/"))
                if name != table.entity_set or key_text is None:
                    raise payload_error(table.entity_set, f"Invalid @odata.id '{address}'.")
                key = parse_key(key_text)
            elif target.get(table.primary_id):
                key = KeySegment(str(target[table.primary_id]).lower(), {})
            else:
                raise payload_error(
                    table.entity_set,
                    f"Every item in Targets must carry @odata.id or '{table.primary_id}'.",
                )
            marker = repr(sorted(key.named.items())) if key.primary is None else key.primary
            if marker in seen:
                raise odata_error("UpsertMultiple does not accept duplicate keys in Targets.")
            seen.add(marker)
            body = {k: v for k, v in target.items() if k != "@odata.id"}
            self._upsert(tx, table, key, body, req, if_match=None, create_only=False)

    # --- $batch -------------------------------------------------------------------------

    def _batch(self, req: ApiRequest) -> ApiResponse:
        if req.in_batch:
            raise odata_error("Nested batch requests are not supported.")
        if req.method != "POST":
            raise _method_not_allowed(req)
        parts = batch.parse_batch(req.body, req.headers.get("content-type", ""))
        status, results = batch.execute(parts, req, self.engine.store, self.dispatch)
        content_type, body = batch.format_response(results)
        return ApiResponse(status, {"Content-Type": content_type}, body)


def _check_etag(row: Row | None, if_match: str | None) -> None:
    if row is None or not if_match or if_match == "*":
        return
    if if_match.strip() != etag(row):
        raise DataverseFault(
            412,
            CONCURRENCY_VERSION_MISMATCH,
            "The version of the existing record doesn't match the RowVersion property provided.",
        )


def _missing(table: Table, key: KeySegment) -> DataverseFault:
    if key.primary is not None:
        return not_found(table.logical_name, key.primary)
    if set(key.named) == {table.primary_id}:
        return not_found(table.logical_name, str(key.named[table.primary_id]))
    return not_found_by_key(table.logical_name)


def _method_not_allowed(req: ApiRequest) -> DataverseFault:
    return odata_error(f"The HTTP method '{req.method}' is not allowed on '{req.path}'.", status=405)
