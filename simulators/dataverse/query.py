"""Reads: collections with ``$filter/$select/$orderby/$top/$count``, paging, change tracking.

Paging is keyset paging, as Dataverse's paging cookie is: the ``$skiptoken`` carries the sort
values of the last row returned, so rows written between pages neither repeat nor vanish. The
first page of a ``Prefer: odata.track-changes`` query snapshots the row version; the last page
carries ``@odata.deltaLink`` with it, and the delta link returns rows written since then plus
``$deletedEntity`` entries for deletes.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

from simulators.dataverse.engine import Engine
from simulators.dataverse.faults import CHANGE_TRACKING_NOT_ENABLED, DataverseFault, odata_error
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.odata import Getter, Node, evaluate, parse_filter, parse_orderby, parse_select
from simulators.dataverse.representation import AnnotationFilter, represent, resolve_select
from simulators.dataverse.scan import narrow
from simulators.dataverse.schema import LOOKUP_TYPES, AttrType, Column, Table
from simulators.dataverse.store import Ref, Row

MAX_PAGE = 5000
_KINDS = {
    AttrType.STRING: "string",
    AttrType.MEMO: "string",
    AttrType.PICKLIST: "int",
    AttrType.STATE: "int",
    AttrType.STATUS: "int",
    AttrType.INTEGER: "int",
    AttrType.BIGINT: "long",
    AttrType.BOOLEAN: "bool",
    AttrType.MONEY: "decimal",
    AttrType.DECIMAL: "decimal",
    AttrType.DATETIME: "datetime",
    AttrType.UNIQUEIDENTIFIER: "guid",
}
_NOT_WITH_TRACKING = ("$filter", "$orderby", "$expand", "$top")


def unknown_property(table: Table, name: str) -> DataverseFault:
    return odata_error(
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{table.logical_name}'."
    )


def property_check(engine: Engine, table: Table) -> Callable[[tuple[str, ...]], str]:
    def check(path: tuple[str, ...]) -> str:
        current = table
        for segment in path[:-1]:
            column = current.lookup_by_navigation(segment)
            if column is None:
                raise unknown_property(current, segment)
            current = engine.tables[column.navigation[segment]]
        name = path[-1]
        column = current.column(name)
        if column is not None and column.type not in LOOKUP_TYPES and column.valid_read:
            return _KINDS[column.type]
        if current.lookup_by_property(name) is not None:
            return "guid"
        raise unknown_property(current, name)

    return check


def row_getter(engine: Engine, table: Table) -> Getter:
    def get(row: Any, path: tuple[str, ...]) -> Any:
        current, data = table, row
        for segment in path[:-1]:
            column = current.lookup_by_navigation(segment)
            ref = data.get(column.name) if column else None
            if not isinstance(ref, Ref):
                return None
            current = engine.tables[ref.logical]
            data = engine.store.get(ref.logical, ref.id) or {}
        lookup = current.lookup_by_property(path[-1])
        if lookup is not None:
            ref = data.get(lookup.name)
            return ref.id if isinstance(ref, Ref) else None
        return data.get(path[-1])

    return get


# --- sort keys and the paging cookie -----------------------------------------------------------


def _sortable(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.casefold())
    if isinstance(value, datetime):
        return (1, value.timestamp())
    return (1, value)


def _comparator(descending: list[bool]) -> Callable[[list[Any], list[Any]], int]:
    def compare(a: list[Any], b: list[Any]) -> int:
        for i, desc in enumerate(descending):
            left, right = tuple(a[i]), tuple(b[i])
            if left != right:
                result = -1 if left < right else 1
                return -result if desc else result
        return 0

    return compare


def _encode_cookie(key: list[Any], page: int, snapshot: int | None) -> str:
    inner_data = json.dumps({"k": key, "v": snapshot}).encode()
    last = base64.urlsafe_b64encode(inner_data).decode()
    inner = f'<cookie page="{page}"><last value="{last}" /></cookie>'
    tracking = "True" if snapshot is not None else "False"
    return f'<cookie pagenumber="{page + 1}" pagingcookie="{quote(inner)}" istracking="{tracking}" />'


def _decode_cookie(token: str) -> tuple[list[Any], int, int | None]:
    outer = re.search(r'pagenumber="(\d+)"\s+pagingcookie="([^"]+)"', token)
    inner = re.search(r'value="([^"]+)"', unquote(outer.group(2))) if outer else None
    if outer is None or inner is None:
        raise odata_error("The $skiptoken is not a valid paging cookie.")
    try:
        data = json.loads(base64.urlsafe_b64decode(inner.group(1)))
    except ValueError as exc:
        raise odata_error("The $skiptoken is not a valid paging cookie.") from exc
    return [list(k) for k in data["k"]], int(outer.group(1)) - 1, data.get("v")


def _delta_token(version: int) -> str:
    return f"{version}!{datetime.now(UTC).strftime('%m/%d/%Y %H:%M:%S')}"


def _parse_delta_token(token: str) -> int:
    head = token.split("!", 1)[0]
    if not head.isdigit():
        raise odata_error("The $deltatoken is not valid.")
    return int(head)


# --- collection GET -------------------------------------------------------------------------


class CollectionQuery:
    def __init__(self, engine: Engine, table: Table, req: ApiRequest) -> None:
        self.engine = engine
        self.table = table
        self.req = req
        self.prefer = req.prefer
        self.annotations = AnnotationFilter(self.prefer.get("odata.include-annotations"))
        q = req.query
        self.tracking = "odata.track-changes" in self.prefer or "$deltatoken" in q
        if self.tracking:
            if not table.change_tracking:
                raise DataverseFault(
                    400,
                    CHANGE_TRACKING_NOT_ENABLED,
                    f"Entity '{table.logical_name}' is not enabled for change tracking.",
                )
            for option in _NOT_WITH_TRACKING:
                if option in q:
                    raise odata_error(
                        f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
                    )
        for option in ("$expand", "$skip", "$apply"):
            if option in q:
                raise odata_error(f"The query parameter {option} is not supported", status=400)
        check = property_check(engine, table)
        self.select_names = parse_select(q["$select"]) if q.get("$select") else None
        self.columns = resolve_select(table, self.select_names) if self.select_names else None
        self.filter: Node | None = parse_filter(q["$filter"], check) if q.get("$filter") else None
        self.order = parse_orderby(q["$orderby"]) if q.get("$orderby") else []
        for name, _ in self.order:
            check((name,))
        self.getter = row_getter(engine, table)
        requested = self.prefer.get("odata.maxpagesize")
        self.page_size = min(int(requested), MAX_PAGE) if requested and requested.isdigit() else MAX_PAGE
        self.top = int(q["$top"]) if q.get("$top", "").isdigit() else None

    def _key(self, row: Row) -> list[Any]:
        values = [_sortable(self.getter(row, (name,))) for name, _ in self.order]
        return [list(v) for v in (*values, _sortable(row[self.table.primary_id]))]

    def _sort_key(self, name: str) -> Callable[[Row], tuple[int, Any]]:
        return lambda row: _sortable(self.getter(row, (name,)))

    def _present(self, row: Row) -> dict[str, Any]:
        return represent(self.table, row, self.columns, self.annotations, self.engine.name_of)

    def _context(self, suffix: str = "") -> str:
        selection = f"({','.join(self.select_names)})" if self.select_names else ""
        return f"{self.req.service_root}/$metadata#{self.table.entity_set}{selection}{suffix}"

    def _link(self, **extra: str) -> str:
        params = {k: v for k, v in self.req.query.items() if k not in ("$skiptoken", "$deltatoken")}
        params.update(extra)
        query = urlencode(params, quote_via=quote, safe="$,()")
        return f"{self.req.service_root}/{self.table.entity_set}?{query}"

    def run(self) -> ApiResponse:
        if "$deltatoken" in self.req.query:
            return self._delta(_parse_delta_token(self.req.query["$deltatoken"]))
        store = self.engine.store
        with store.lock:
            snapshot = store.version
            page_number = 1
            last: list[Any] | None = None
            token = self.req.query.get("$skiptoken")
            if token:
                last, page_number, cookie_snapshot = _decode_cookie(token)
                snapshot = cookie_snapshot if cookie_snapshot is not None else snapshot
                page_number += 1
            size = self.page_size
            limit = size + 1  # one more than a page tells whether there is a next page
            if self.top is not None and "odata.maxpagesize" not in self.prefer:
                size = min(self.top, MAX_PAGE) or MAX_PAGE
                limit = min(self.top, size + 1)
            found = self._ordered_page(last, limit) if self.order else self._keyset_page(last, limit)
            page, more = found[:size], len(found) > size
            body: dict[str, Any] = {"@odata.context": self._context()}
            if self.req.query.get("$count") == "true":
                body["@odata.count"] = min(self._count(), MAX_PAGE)
            body["value"] = [self._present(r) for r in page]
            last_key = self._key(page[-1]) if page else None
        if more and last_key is not None:
            cookie = _encode_cookie(last_key, page_number, snapshot if self.tracking else None)
            body["@odata.nextLink"] = self._link(**{"$skiptoken": cookie})
        elif self.tracking:
            body["@odata.deltaLink"] = self._link(**{"$deltatoken": _delta_token(snapshot)})
        return ApiResponse.json(200, body, self._applied())

    # A read walks rows in key order from where the last page stopped and evaluates the filter
    # only until the page is full: paging through a whole table costs one pass over it, not one
    # pass (and a sort) per page. Rows named by an In() or eq on the key or an indexed column
    # are looked up instead of scanned for.

    def _matches(self, row: Row) -> bool:
        return self.filter is None or evaluate(self.filter, row, self.getter)

    def _candidates(self) -> list[str]:
        """Ids of the rows the filter can match, in key order (skip ids with no row)."""
        store, logical = self.engine.store, self.table.logical_name
        narrowed = narrow(self.filter, self.table, store) if self.filter is not None else None
        return sorted(narrowed) if narrowed is not None else store.ordered_ids(logical)

    def _keyset_page(self, last: list[Any] | None, limit: int) -> list[Row]:
        rows = self.engine.store.rows[self.table.logical_name]
        ids = self._candidates()
        start = bisect.bisect_right(ids, last[-1][1]) if last else 0
        page: list[Row] = []
        for row_id in itertools.islice(ids, start, None):
            row = rows.get(row_id)
            if row is not None and self._matches(row):
                page.append(row)
                if len(page) >= limit:
                    break
        return page

    def _ordered_page(self, last: list[Any] | None, limit: int) -> list[Row]:
        rows = self.engine.store.rows[self.table.logical_name]
        matching = [
            r for r in (rows.get(i) for i in self._candidates()) if r is not None and self._matches(r)
        ]
        # Stable sorts from the last sort key to the first: the order $orderby asks for, with
        # the primary key (already the order of the candidates) breaking ties.
        for name, descending in reversed(self.order):
            matching.sort(key=self._sort_key(name), reverse=descending)
        if last is not None:
            compare = _comparator([d for _, d in self.order] + [False])
            low, high = 0, len(matching)
            while low < high:
                middle = (low + high) // 2
                if compare(self._key(matching[middle]), last) > 0:
                    high = middle
                else:
                    low = middle + 1
            matching = matching[low:]
        return matching[:limit]

    def _count(self) -> int:
        rows = self.engine.store.rows[self.table.logical_name]
        return sum(1 for r in (rows.get(i) for i in self._candidates()) if r is not None and self._matches(r))

    def _applied(self) -> dict[str, str]:
        applied = []
        if "odata.maxpagesize" in self.prefer:
            applied.append(f"odata.maxpagesize={self.page_size}")
        if self.annotations.any:
            applied.append(f'odata.include-annotations="{self.prefer["odata.include-annotations"]}"')
        if self.tracking:
            applied.append("odata.track-changes")
        return {"Preference-Applied": ",".join(applied)} if applied else {}

    def _delta(self, since: int) -> ApiResponse:
        store, logical = self.engine.store, self.table.logical_name
        with store.lock:
            changed = sorted(
                (r for r in store.rows[logical].values() if r["versionnumber"] > since),
                key=lambda r: r["versionnumber"],
            )
            live = {r[self.table.primary_id]: r["versionnumber"] for r in changed}
            deleted = [
                row_id
                for version, row_id in store.tombstones[logical]
                if version > since and live.get(row_id, 0) < version
            ]
            values: list[dict[str, Any]] = [self._present(r) for r in changed]
            version = store.version
        removed = f"{self.req.service_root}/$metadata#{self.table.entity_set}/$deletedEntity"
        values.extend({"@odata.context": removed, "id": i, "reason": "deleted"} for i in deleted)
        body = {
            "@odata.context": self._context("/$delta"),
            "value": values,
            "@odata.deltaLink": self._link(**{"$deltatoken": _delta_token(version)}),
        }
        return ApiResponse.json(200, body, self._applied())


def get_row(engine: Engine, table: Table, row: Row, req: ApiRequest) -> ApiResponse:
    names = parse_select(req.query["$select"]) if req.query.get("$select") else None
    columns = resolve_select(table, names) if names else None
    if "$expand" in req.query:
        raise odata_error("The query parameter $expand is not supported by this simulator.")
    annotations = AnnotationFilter(req.prefer.get("odata.include-annotations"))
    etag_header = req.headers.get("if-none-match", "")
    if etag_header.startswith("W/") and etag_header == f'W/"{row["versionnumber"]}"' and not annotations.any:
        return ApiResponse(304, {})
    body = {
        "@odata.context": f"{req.service_root}/$metadata#{table.entity_set}"
        + (f"({','.join(names)})" if names else "")
        + "/$entity",
        **represent(table, row, columns, annotations, engine.name_of),
    }
    return ApiResponse.json(200, body)


def selected_columns(table: Table, req: ApiRequest) -> list[Column] | None:
    names = parse_select(req.query["$select"]) if req.query.get("$select") else None
    return resolve_select(table, names) if names else None


def count_rows(engine: Engine, table: Table) -> ApiResponse:
    with engine.store.lock:
        total = len(engine.store.rows[table.logical_name])
    return ApiResponse(200, {"Content-Type": "text/plain"}, str(min(total, MAX_PAGE)).encode())
