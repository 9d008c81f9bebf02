"""DataverseClient: the Web API v9.2 calls mdsync makes.

Built as ``(endpoint, credential, *, options)`` (the Web API URL and an azure-identity
credential) and never changed afterwards. Every request goes through one azure-core pipeline
(:mod:`shared.dataverse.pipeline`: bearer token, one retry policy and budget, 401 refresh,
counting, redacted logging), so :attr:`calls` counts everything sent. Verbs mean one thing:
``create`` fails if the row exists, ``update`` fails if it is missing, ``upsert_by_key`` does
either, ``get`` raises NotFoundError, ``delete`` succeeds when the row is already gone.

For whole tables (the initial sync), :meth:`~DataverseClient.read_table` streams pages of 5,000
rows with only the selected columns, and :meth:`~DataverseClient.update_rows` writes any number
of rows 1,000 a request (UpdateMultiple, or ``$batch`` where a table lacks it) with an outcome
per row. Both take and give iterators, so memory stays bounded whatever the table's size.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests

from shared.calls import CallCounter, RateHeaders
from shared.dataverse import batch as batch_body
from shared.dataverse import metadata, odata, webhooks
from shared.dataverse.bypass import HEADER, OwnSteps, refuses_bypass
from shared.dataverse.errors import SERVICE
from shared.dataverse.models import (
    BatchRequest,
    BatchResponse,
    DeltaPage,
    EntityMetadata,
    KeyInfo,
    RowPage,
    RowResult,
    StepSpec,
    TableInfo,
    WebhookRegistration,
)
from shared.errors import (
    AccessDeniedError,
    NotFoundError,
    PermanentError,
    ServiceUnavailableError,
    ValidationError,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

MAX_PAGE_SIZE = 5000
MAX_BULK_ROWS = 1000  # rows per UpdateMultiple/UpsertMultiple request, as Microsoft advises
T = TypeVar("T")
Key = str | uuid.UUID | Mapping[str, odata.Value]


def _check_bulk_size(items: Sequence[Any]) -> None:
    if len(items) > MAX_BULK_ROWS:
        raise ValueError(f"at most {MAX_BULK_ROWS} rows a request, not {len(items)}")


def bulk_chunks(
    items: Iterable[T], key: Callable[[T], str], size: int = MAX_BULK_ROWS
) -> Iterator[list[tuple[int, T]]]:
    """``(index, item)`` lists of at most ``size``; a key seen again starts a new list, since a
    bulk message takes a key once (UpdateMultiple ignores a repeat, UpsertMultiple fails)."""
    chunk: list[tuple[int, T]] = []
    keys: set[str] = set()
    for index, item in enumerate(items):
        item_key = key(item)
        if len(chunk) == size or item_key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append((index, item))
        keys.add(item_key)
    if chunk:
        yield chunk


def _update_part(entity_set: str, logical_name: str, record: Mapping[str, Any]) -> BatchRequest:
    key = f"{logical_name}id"
    body = {k: v for k, v in record.items() if k != key}
    return BatchRequest("PATCH", odata.key_path(entity_set, str(record[key])), body, {"If-Match": "*"})


def _label(method: str, path: str) -> str:
    """``leads(…)/Microsoft.Dynamics.CRM.QualifyLead`` -> ``POST leads()/QualifyLead``."""
    parts = []
    for segment in path.split("?", 1)[0].split("/"):
        if not segment:
            continue
        name = segment.split("(", 1)[0].removeprefix(odata.NS)
        parts.append(name + ("()" if "(" in segment else ""))
    return f"{method} {'/'.join(parts)}"


def _definition(logical_name: str) -> str:
    return f"EntityDefinitions(LogicalName={odata.string(odata.prop(logical_name))})"


class DataverseClient:
    def __init__(
        self,
        endpoint: str,
        credential: TokenCredential,
        *,
        session: requests.Session,
        scope: str | None = None,
        max_concurrency: int = 16,
        timeout: float = 30.0,
        retry_budget_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        own_steps: OwnSteps | None = None,
    ) -> None:
        """``endpoint``: the Web API URL (``https://org.crm.dynamics.com/api/data/v9.2``);
        ``credential``: an azure-identity credential (:func:`shared.dataverse.auth.dataverse_tokens`
        builds the settings' one); ``scope``: the organization's ``/.default``, by default that
        of the endpoint's host. ``timeout`` is per attempt; ``retry_budget_seconds`` bounds the
        retries of one call (docs/retries.md). ``own_steps``: mdsync's webhook steps, which its
        writes of leads and contacts then bypass (:mod:`shared.dataverse.bypass`)."""
        # azure-core is imported with the first client, not with this module (cold start).
        from shared.dataverse.pipeline import DataversePipeline  # noqa: PLC0415

        self.api_url = endpoint.rstrip("/")
        parts = urlsplit(self.api_url)
        self._service_path = parts.path
        self._transport = DataversePipeline(
            credential,
            scope or f"{parts.scheme}://{parts.netloc}/.default",
            session,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry_budget_seconds=retry_budget_seconds,
            sleep=sleep,
        )
        self._lock = threading.Lock()
        self._tables: dict[str, TableInfo] = {}
        self._metadata: dict[str, EntityMetadata] = {}
        self._multiple: dict[str, bool] = {}
        self._own_steps = own_steps

    @property
    def calls(self) -> CallCounter:
        """Requests sent, by endpoint; ``calls.total`` is the number per synced change uses."""
        return self._transport.calls

    @property
    def rate_headers(self) -> RateHeaders:
        """The service-protection headers of the last answer (the console's request window)."""
        return self._transport.rate_headers

    # --- plumbing ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") or path.startswith("http://") else f"{self.api_url}/{path}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        keep: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        relative = path[len(self.api_url) + 1 :] if path.startswith(self.api_url) else path

        def send(extra: Mapping[str, str]) -> requests.Response:
            return self._transport.request(
                method,
                self._url(path),
                label=_label(method, relative),
                idempotent=idempotent,
                params=params,
                json=json,
                data=data,
                headers={**(headers or {}), **extra} if extra else headers,
                keep=keep,
            )

        own = self._own_steps
        bypass = own.header(self, method, relative, headers or {}) if own is not None else {}
        if not bypass:
            return send({})
        try:
            return send(bypass)
        except (AccessDeniedError, ValidationError) as exc:
            if own is None or not refuses_bypass(exc):
                raise
            # Refused before anything was written: the same write without the header.
            response = send({})
            own.refuse(exc)
            return response

    def _get_json(
        self, path: str, params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> Any:
        response = self._request(
            "GET", path, idempotent=True, params=params, headers={"If-None-Match": "null", **(headers or {})}
        )
        return response.json()

    # --- reads ---------------------------------------------------------------------------

    def query(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        orderby: str | Sequence[str] | None = None,
        top: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
        annotations: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Matching rows, following ``@odata.nextLink`` page by page (lazily)."""
        params: dict[str, str] = {"$select": ",".join(select)}
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = orderby if isinstance(orderby, str) else ",".join(orderby)
        prefer = []
        if top is not None:
            # $top is ignored when odata.maxpagesize is also sent.
            params["$top"] = str(top)
        else:
            prefer.append(f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}")
        if annotations:
            prefer.append(f'odata.include-annotations="{annotations}"')
        headers = {"Prefer": ",".join(prefer)} if prefer else {}
        for page in self._pages(odata.prop(entity_set), params, headers):
            yield from page.rows

    def read_table(
        self,
        entity_set: str,
        select: Sequence[str],
        *,
        modified_since: datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
        resume_from: str | None = None,
    ) -> Iterator[RowPage]:
        """A whole table (or the rows modified since a moment), ``select`` columns only, one
        page of up to 5,000 rows at a time, in primary-key order. Each page carries the link to
        the next: keep it, and ``resume_from=`` that link continues after the page (a crash
        between pages re-reads at most one page)."""
        headers = {"Prefer": f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        if resume_from is not None:
            yield from self._pages(resume_from, None, headers)
            return
        params = {"$select": ",".join(select)}
        if modified_since is not None:
            params["$filter"] = odata.compare("modifiedon", "ge", modified_since)
        yield from self._pages(odata.prop(entity_set), params, headers)

    def _pages(
        self, path: str, params: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> Iterator[RowPage]:
        data = self._get_json(path, params, headers)
        while True:
            next_link = data.get("@odata.nextLink")
            yield RowPage(list(data.get("value", [])), str(next_link) if next_link else None)
            if not next_link:
                return
            # The link is followed as given (never re-encoded), with the same preferences.
            data = self._get_json(next_link, None, headers)

    def estimated_counts(self, logical_names: Sequence[str]) -> dict[str, int]:
        """Rows per table from Dataverse's last snapshot (RetrieveTotalRecordCount, taken within
        the last 24 hours): one request, an estimate (for an ETA, never for a decision)."""
        names = json.dumps(list(logical_names))
        data = self._get_json("RetrieveTotalRecordCount(EntityNames=@p1)", {"@p1": names})
        collection = data.get("EntityRecordCountCollection") or {}
        return {
            str(k): int(v)
            for k, v in zip(collection.get("Keys", []), collection.get("Values", []), strict=False)
        }

    def get(self, entity_set: str, key: Key, *, select: Sequence[str]) -> dict[str, Any]:
        """One row by id or alternate key; NotFoundError when there is none."""
        result: dict[str, Any] = self._get_json(
            odata.key_path(entity_set, key), {"$select": ",".join(select)}
        )
        return result

    def whoami(self) -> str:
        """The systemuserid of the calling application user."""
        return str(self._get_json("WhoAmI")["UserId"])

    def holds_privilege(self, name: str) -> bool:
        """Whether the calling user holds privilege ``name`` through a role or a team
        (RetrieveUserPrivilegeByPrivilegeName)."""
        user = self.whoami()
        function = f"{odata.NS}RetrieveUserPrivilegeByPrivilegeName(PrivilegeName={odata.string(name)})"
        return bool(self._get_json(f"systemusers({user})/{function}").get("RolePrivileges"))

    def organization_id(self) -> str:
        """The organization's id (WhoAmI): what the state store is bound to."""
        return str(self._get_json("WhoAmI")["OrganizationId"])

    # --- single-row writes ------------------------------------------------------------------

    def create(
        self, entity_set: str, record: Mapping[str, Any], *, select: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Create a row and return it (``return=representation``)."""
        params = {"$select": ",".join(select)} if select else None
        response = self._request(
            "POST",
            odata.prop(entity_set),
            idempotent=False,
            params=params,
            json=dict(record),
            headers={"Prefer": "return=representation"},
        )
        result: dict[str, Any] = response.json()
        return result

    def update(
        self, entity_set: str, key: Key, changes: Mapping[str, Any], *, etag: str | None = None
    ) -> None:
        """Update an existing row (If-Match: the ETag, or ``*``): NotFoundError when missing,
        ConflictError when the ETag is stale."""
        self._request(
            "PATCH",
            odata.key_path(entity_set, key),
            idempotent=True,
            json=dict(changes),
            headers={"If-Match": etag or "*"},
        )

    def upsert_by_key(
        self,
        entity_set: str,
        key: Mapping[str, odata.Value],
        record: Mapping[str, Any],
        *,
        create_only: bool = False,
        select: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Create or update the row the alternate key names; returns the row.

        ``create_only`` sends ``If-None-Match: *``: an existing row raises ConflictError
        (0x80040237), which is how two racing creates end with exactly one row."""
        headers = {"Prefer": "return=representation"}
        if create_only:
            headers["If-None-Match"] = "*"
        params = {"$select": ",".join(select)} if select else None
        body = {k: v for k, v in record.items() if k not in key}
        response = self._request(
            "PATCH",
            odata.key_path(entity_set, key),
            idempotent=True,
            params=params,
            json=body,
            headers=headers,
        )
        result: dict[str, Any] = response.json()
        return result

    def delete(self, entity_set: str, key: Key) -> None:
        """Delete a row; a row that is already gone is not an error."""
        try:
            self._request("DELETE", odata.key_path(entity_set, key), idempotent=True)
        except NotFoundError:
            return

    # --- bulk writes ---------------------------------------------------------------------

    def supports_multiple(self, logical_name: str) -> bool:
        """Whether the table offers CreateMultiple and UpdateMultiple (probed once)."""
        with self._lock:
            known = self._multiple.get(logical_name)
        if known is not None:
            return known
        clause = odata.and_(
            odata.or_(
                odata.eq("sdkmessageid/name", "CreateMultiple"),
                odata.eq("sdkmessageid/name", "UpdateMultiple"),
            ),
            odata.eq("primaryobjecttypecode", logical_name),
        )
        rows = list(self.query("sdkmessagefilters", select=["_sdkmessageid_value"], filter=clause))
        supported = len({r.get("_sdkmessageid_value") for r in rows}) >= 2
        with self._lock:
            self._multiple[logical_name] = supported
        return supported

    @staticmethod
    def _typed(logical_name: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{"@odata.type": f"{odata.NS}{logical_name}", **r} for r in records]

    def create_multiple(
        self, entity_set: str, logical_name: str, records: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Create rows in one all-or-nothing call; returns their ids in order.

        Tables without CreateMultiple get one ``$batch`` change set instead (also atomic)."""
        if not records:
            return []
        if not self.supports_multiple(logical_name):
            parts = [BatchRequest("POST", entity_set, dict(r)) for r in records]
            return [str(r.entity_id) for r in self._change_set(parts)]
        response = self._request(
            "POST",
            f"{odata.prop(entity_set)}/{odata.NS}CreateMultiple",
            idempotent=False,
            json={"Targets": self._typed(logical_name, records)},
        )
        return [str(i) for i in response.json().get("Ids", [])]

    def update_multiple(
        self, entity_set: str, logical_name: str, records: Sequence[Mapping[str, Any]]
    ) -> None:
        """Update up to 1,000 rows (each carries its primary key) in one all-or-nothing call."""
        _check_bulk_size(records)
        if not records:
            return
        if not self.supports_multiple(logical_name):
            self._change_set([_update_part(entity_set, logical_name, r) for r in records])
            return
        self._request(
            "POST",
            f"{odata.prop(entity_set)}/{odata.NS}UpdateMultiple",
            idempotent=True,
            json={"Targets": self._typed(logical_name, records)},
        )

    def update_rows(
        self, entity_set: str, logical_name: str, records: Iterable[Mapping[str, Any]]
    ) -> Iterator[RowResult]:
        """Update any number of rows (each carries its primary key), 1,000 a request, with an
        outcome per row in input order. A request is all-or-nothing, so one bad row fails its 1,000:
        those are then sent again as one ``$batch`` that carries on past errors, and only the bad
        rows come back with their error. A transient failure (after retries) raises: the rows of
        the outcomes already yielded are written, the others are not."""
        key = f"{logical_name}id"
        for chunk in bulk_chunks(records, lambda r: str(r[key]).lower()):
            yield from self._per_row(
                chunk,
                lambda rows: self.update_multiple(entity_set, logical_name, [r for _, r in rows]),
                lambda index, record: _update_part(entity_set, logical_name, record),
            )

    def _per_row(
        self,
        chunk: list[tuple[int, T]],
        send_all: Callable[[list[tuple[int, T]]], None],
        part: Callable[[int, T], BatchRequest],
    ) -> Iterator[RowResult]:
        try:
            send_all(chunk)
        except PermanentError:
            answers = self.batch([part(i, item) for i, item in chunk], continue_on_error=True)
            for (index, _), answer in zip(chunk, answers, strict=False):
                yield RowResult(index, answer.error)
            for index, _ in chunk[len(answers) :]:
                yield RowResult(index, ServiceUnavailableError("no answer for this row", service=SERVICE))
            return
        for index, _ in chunk:
            yield RowResult(index)

    # --- $batch --------------------------------------------------------------------------

    def batch(
        self,
        parts: Sequence[BatchRequest | Sequence[BatchRequest]],
        *,
        continue_on_error: bool = False,
    ) -> list[BatchResponse]:
        """Send ``$batch``: requests and change sets (lists); one response per request run.

        Without ``continue_on_error`` the service stops at the first failure; the failed part's
        response carries ``error``. A change set that failed answers with its failing part."""
        own = self._own_steps
        marked, outer = self._bypassing(parts) if own is not None else (parts, {})
        if own is None or marked is parts:
            return self._send_batch(parts, continue_on_error, {})
        try:
            answers = self._send_batch(marked, continue_on_error, outer)
        except (AccessDeniedError, ValidationError) as exc:
            if not refuses_bypass(exc):
                raise
            answers = self._send_batch(parts, continue_on_error, {})
            own.refuse(exc)
            return answers
        return self._unrefused(own, parts, marked, answers, continue_on_error)

    def _bypassing(
        self, parts: Sequence[batch_body.BatchPart]
    ) -> tuple[Sequence[batch_body.BatchPart], dict[str, str]]:
        """The parts with the bypass header on each write of a lead or contact, and the header
        for the whole batch (the union, while within Dataverse's limit): whichever of the two
        Dataverse reads. The parts as given when none carries one."""
        assert self._own_steps is not None
        own, union, marked, changed = self._own_steps, set[str](), [], False

        def mark(request: BatchRequest) -> BatchRequest:
            nonlocal changed
            header = own.header(self, request.method, request.path, request.headers)
            if not header:
                return request
            changed = True
            union.update(next(iter(header.values())).split(","))
            return dataclasses.replace(request, headers={**request.headers, **header})

        for part in parts:
            marked.append(mark(part) if isinstance(part, BatchRequest) else [mark(r) for r in part])
        return (marked, own.header_for(union)) if changed else (parts, {})

    def _unrefused(
        self,
        own: OwnSteps,
        parts: Sequence[batch_body.BatchPart],
        marked: Sequence[batch_body.BatchPart],
        answers: list[BatchResponse],
        continue_on_error: bool,
    ) -> list[BatchResponse]:
        """The answers, with the parts refused while they carried the header (and those the
        batch then did not run) sent again without it."""
        per_part = batch_body.per_part(parts, answers)
        refusals = [
            answer.error
            for part, got in zip(marked, per_part, strict=True)
            for answer in got
            if answer.error is not None and refuses_bypass(answer.error) and batch_body.carries(part, HEADER)
        ]
        if not refusals:
            return answers
        again = [i for i, got in enumerate(per_part) if not got or any(a.error in refusals for a in got)]
        resent = batch_body.per_part(
            [parts[i] for i in again], self._send_batch([parts[i] for i in again], continue_on_error, {})
        )
        for i, got in zip(again, resent, strict=True):
            if per_part[i] and not any(a.error is not None and refuses_bypass(a.error) for a in got):
                own.refuse(refusals[0])
            per_part[i] = got
        return [answer for got in per_part for answer in got]

    def _send_batch(
        self, parts: Sequence[batch_body.BatchPart], continue_on_error: bool, extra: Mapping[str, str]
    ) -> list[BatchResponse]:
        content_type, body = batch_body.build(parts, self._service_path)
        headers = {"Content-Type": content_type, **extra}
        if continue_on_error:
            headers["Prefer"] = "odata.continue-on-error"
        only_reads = all(isinstance(p, BatchRequest) and p.method == "GET" for p in parts)
        response = self._request(
            "POST",
            "$batch",
            idempotent=only_reads,
            data=body,
            headers=headers,
            keep=lambda r: r.headers.get("Content-Type", "").startswith("multipart/"),
        )
        return batch_body.parse(response.headers.get("Content-Type", ""), response.content)

    def _change_set(self, parts: list[BatchRequest]) -> list[BatchResponse]:
        results = self.batch([parts])
        for result in results:
            if result.error is not None:
                raise result.error
        return results

    # --- metadata ------------------------------------------------------------------------

    def table_info(self, logical_name: str) -> TableInfo:
        with self._lock:
            cached = self._tables.get(logical_name)
        if cached is not None:
            return cached
        path = _definition(logical_name)
        info = metadata.table_info(self._get_json(path, {"$select": metadata.TABLE_SELECT}))
        with self._lock:
            self._tables[logical_name] = info
        return info

    def change_tracking_enabled(self, logical_name: str) -> bool:
        return self.table_info(logical_name).change_tracking

    def entity_metadata(self, logical_name: str, *, refresh: bool = False) -> EntityMetadata:
        """Columns with type, requirement level, MaxLength, format and options (cached)."""
        with self._lock:
            cached = None if refresh else self._metadata.get(logical_name)
        if cached is not None:
            return cached
        table = self.table_info(logical_name)
        base = f"{_definition(logical_name)}/Attributes"
        attributes = self._get_json(base, {"$select": metadata.ATTRIBUTE_SELECT})["value"]
        casts: list[dict[str, Any]] = []
        for cast, params in metadata.CAST_QUERIES:
            casts.extend(self._get_json(f"{base}/{odata.NS}{cast}", params)["value"])
        result = metadata.build(table, attributes, casts)
        with self._lock:
            self._metadata[logical_name] = result
        return result

    def keys(self, logical_name: str) -> list[KeyInfo]:
        """The table's alternate keys with their index status (never cached: it changes)."""
        path = f"{_definition(logical_name)}/Keys"
        rows = self._get_json(path, {"$select": "LogicalName,KeyAttributes,EntityKeyIndexStatus"})["value"]
        return [
            KeyInfo(
                str(k["LogicalName"]), tuple(k.get("KeyAttributes") or ()), str(k.get("EntityKeyIndexStatus"))
            )
            for k in rows
        ]

    def create_column(
        self, logical_name: str, definition: Mapping[str, Any], *, solution: str | None
    ) -> None:
        """POST an ``AttributeMetadata`` (its ``@odata.type`` says which) on the table; with
        ``solution``, the column joins that unmanaged solution (MSCRM.SolutionUniqueName)."""
        self._create_definition(f"{_definition(logical_name)}/Attributes", definition, solution)

    def create_key(self, logical_name: str, definition: Mapping[str, Any], *, solution: str | None) -> None:
        """POST an ``EntityKeyMetadata``; the key is Pending until its index is built."""
        self._create_definition(f"{_definition(logical_name)}/Keys", definition, solution)

    def _create_definition(self, path: str, definition: Mapping[str, Any], solution: str | None) -> None:
        headers = {"MSCRM.SolutionUniqueName": solution} if solution else None
        self._request("POST", path, idempotent=False, json=dict(definition), headers=headers)
        with self._lock:
            self._metadata.clear()

    # --- change tracking -----------------------------------------------------------------

    def track_changes(
        self, entity_set: str, select: Sequence[str], *, page_size: int = MAX_PAGE_SIZE
    ) -> DeltaPage:
        """Start change tracking: every current row, and the delta link for what comes next."""
        headers = {"Prefer": f"odata.track-changes,odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)}"}
        data = self._get_json(odata.prop(entity_set), {"$select": ",".join(select)}, headers)
        return self._delta_pages(data, headers)

    def follow_delta(self, delta_link: str) -> DeltaPage:
        """Rows created or changed, and ids deleted, since ``delta_link`` was issued."""
        headers = {"Prefer": "odata.track-changes"}
        return self._delta_pages(self._get_json(delta_link, None, headers), headers)

    def _delta_pages(self, data: Any, headers: Mapping[str, str]) -> DeltaPage:
        changed: list[dict[str, Any]] = []
        deleted: list[str] = []
        while True:
            for row in data.get("value", []):
                if "$deletedEntity" in str(row.get("@odata.context", "")) or row.get("reason") == "deleted":
                    deleted.append(str(row["id"]))
                else:
                    changed.append(row)
            next_link = data.get("@odata.nextLink")
            if not next_link:
                break
            data = self._get_json(next_link, None, headers)
        delta_link = data.get("@odata.deltaLink")
        if not delta_link:
            raise ServiceUnavailableError(
                "the change-tracking answer had no @odata.deltaLink", service=SERVICE
            )
        return DeltaPage(changed, deleted, str(delta_link))

    # --- webhooks ------------------------------------------------------------------------

    def register_webhook(
        self, name: str, url: str, headers: Mapping[str, str], steps: Sequence[StepSpec]
    ) -> WebhookRegistration:
        """Register (or re-register) a webhook: HttpHeader service endpoint, steps, images."""
        registration = webhooks.register(self, name, url, headers, steps)
        if self._own_steps is not None:
            self._own_steps.forget()
        return registration
