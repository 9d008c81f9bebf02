"""``$batch``: multipart/mixed requests with change sets, executed in order.

A change set is atomic (one transaction; ``Content-ID`` values can be referenced as ``$n`` by
later parts); GET is not allowed inside one. Without ``Prefer: odata.continue-on-error`` the
batch stops at the first failing part and answers with that part's status; with it, the batch
answers 200 and every part carries its own result. At most 1000 requests per batch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from simulators.dataverse.faults import DataverseFault, odata_error
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.schema import Table
from simulators.dataverse.store import Ref, Store

MAX_REQUESTS = 1000
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
# Compiled once: every part of a $batch of up to 1,000 is split with them.
_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")
_TRAILING_BREAK = re.compile(r"\r?\n$")
_ENTITY_ID = re.compile(r"/api/data/v9\.\d/([A-Za-z_]+)\(([0-9a-fA-F-]{36})\)")


@dataclass
class Operation:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None


@dataclass
class ChangeSet:
    operations: list[Operation] = field(default_factory=list)


Part = Operation | ChangeSet
Dispatch = Callable[[ApiRequest], ApiResponse]


def boundary_of(content_type: str) -> str:
    match = _BOUNDARY.search(content_type)
    if match is None or not content_type.lower().startswith("multipart/mixed"):
        raise odata_error("The batch request must have Content-Type multipart/mixed with a boundary.")
    return match.group(1)


def _split(body: str, boundary: str) -> list[str]:
    delimiter = f"--{boundary}"
    if delimiter not in body:
        raise odata_error("The batch request body does not contain its boundary.")
    chunks = body.split(delimiter)[1:]
    parts = []
    for chunk in chunks:
        if chunk.startswith("--"):
            break
        parts.append(chunk.lstrip("\r\n") if chunk.startswith(("\r\n", "\n")) else chunk)
    return parts


def _headers_and_rest(text: str) -> tuple[dict[str, str], str]:
    match = _BLANK_LINE.search(text)
    head, rest = (text[: match.start()], text[match.end() :]) if match else (text, "")
    headers: dict[str, str] = {}
    for line in _LINE_BREAK.split(head):
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _operation(part_headers: dict[str, str], text: str) -> Operation:
    if not part_headers.get("content-type", "").lower().startswith("application/http"):
        raise odata_error("Each batch part must have Content-Type application/http.")
    lines = _LINE_BREAK.split(text, maxsplit=1)
    request_line = lines[0].strip()
    pieces = request_line.split()
    if len(pieces) < 2:
        raise odata_error(f"Invalid request line in batch part: '{request_line}'.")
    headers, body = _headers_and_rest(lines[1] if len(lines) > 1 else "")
    body = _TRAILING_BREAK.sub("", body)
    return Operation(
        pieces[0].upper(),
        pieces[1],
        headers,
        body.encode("utf-8"),
        part_headers.get("content-id") or headers.get("content-id"),
    )


def parse_batch(body: bytes, content_type: str) -> list[Part]:
    text = body.decode("utf-8")
    parts: list[Part] = []
    count = 0
    for chunk in _split(text, boundary_of(content_type)):
        headers, rest = _headers_and_rest(chunk)
        if headers.get("content-type", "").lower().startswith("multipart/mixed"):
            change_set = ChangeSet()
            for inner in _split(rest, boundary_of(headers["content-type"])):
                inner_headers, inner_rest = _headers_and_rest(inner)
                change_set.operations.append(_operation(inner_headers, inner_rest))
            count += len(change_set.operations)
            parts.append(change_set)
        else:
            parts.append(_operation(headers, rest))
            count += 1
    if count > MAX_REQUESTS:
        raise odata_error(f"The number of requests in a batch exceeds the limit of {MAX_REQUESTS}.")
    return parts


# --- execution ------------------------------------------------------------------------------


def _sub_request(
    op: Operation, outer: ApiRequest, content_ids: dict[str, Ref], tables: dict[str, Table]
) -> ApiRequest:
    split = urlsplit(op.url)
    path = split.path
    if path.startswith("$"):
        ref_id, _, rest = path[1:].partition("/")
        ref = content_ids.get(ref_id)
        if ref is None:
            raise odata_error(f"Content-ID reference '${ref_id}' was not found in the change set.")
        path = f"{tables[ref.logical].entity_set}({ref.id})" + (f"/{rest}" if rest else "")
    elif "/api/data/" in path:
        path = path.split("/api/data/", 1)[1].partition("/")[2]
    headers = {k: v for k, v in outer.headers.items() if k == "authorization"}
    headers.update(op.headers)
    return ApiRequest(
        method=op.method,
        path=unquote(path.lstrip("/")),
        query=dict(parse_qsl(split.query, keep_blank_values=True)),
        headers=headers,
        body=op.body,
        caller=outer.caller,
        service_root=outer.service_root,
        content_ids=content_ids,
        in_batch=True,
    )


def _response_ref(response: ApiResponse, tables: dict[str, Table]) -> Ref | None:
    match = _ENTITY_ID.search(response.headers.get("OData-EntityId", ""))
    if match is None:
        return None
    table = next((t for t in tables.values() if t.entity_set == match.group(1)), None)
    return Ref(table.logical_name, match.group(2).lower()) if table else None


Outcome = list[tuple[Operation, ApiResponse]]


def execute(
    parts: list[Part], outer: ApiRequest, store: Store, dispatch: Dispatch
) -> tuple[int, list[tuple[Part, Outcome]]]:
    """Run the parts; returns the overall status and, per part, its (operation, response)s."""
    continue_on_error = "odata.continue-on-error" in outer.prefer
    results: list[tuple[Part, Outcome]] = []
    status = 200
    for part in parts:
        if isinstance(part, Operation):
            response = _run(part, outer, store, dispatch)
            results.append((part, [(part, response)]))
            failed = response.status >= 400
        else:
            outcome = _run_change_set(part, outer, store, dispatch)
            results.append((part, outcome))
            failed = outcome[-1][1].status >= 400
        if failed and not continue_on_error:
            last = results[-1][1][-1][1]
            status = last.status
            break
    return status, results


def _run(op: Operation, outer: ApiRequest, store: Store, dispatch: Dispatch) -> ApiResponse:
    try:
        return dispatch(_sub_request(op, outer, {}, store.tables))
    except DataverseFault as fault:
        return ApiResponse.fault(fault)


def _run_change_set(part: ChangeSet, outer: ApiRequest, store: Store, dispatch: Dispatch) -> Outcome:
    content_ids: dict[str, Ref] = {}
    done: Outcome = []

    class _Abort(Exception):
        pass

    try:
        with store.transaction() as tx:
            for op in part.operations:
                if op.method == "GET":
                    failure = ApiResponse.fault(
                        odata_error("GET requests are not allowed inside a change set.")
                    )
                    done = [(op, failure)]
                    raise _Abort
                try:
                    sub = _sub_request(op, outer, content_ids, store.tables)
                except DataverseFault as fault:
                    done = [(op, ApiResponse.fault(fault))]
                    raise _Abort from fault
                sub.tx = tx
                response = _run_sub(sub, dispatch)
                if response.status >= 400:
                    done = [(op, response)]
                    raise _Abort
                if op.content_id:
                    ref = _response_ref(response, store.tables)
                    if ref is not None:
                        content_ids[op.content_id] = ref
                done.append((op, response))
    except _Abort:
        pass
    return done


def _run_sub(sub: ApiRequest, dispatch: Dispatch) -> ApiResponse:
    try:
        return dispatch(sub)
    except DataverseFault as fault:
        return ApiResponse.fault(fault)


# --- the response ---------------------------------------------------------------------------


def _http_part(op: Operation, response: ApiResponse) -> str:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if op.content_id:
        lines.append(f"Content-ID: {op.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {reason}"]
    headers = {"OData-Version": "4.0", **response.headers}
    if "OData-EntityId" in headers:
        headers.setdefault("Location", headers["OData-EntityId"])
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["", response.body.decode("utf-8")]
    return "\r\n".join(lines)


def format_response(results: list[tuple[Part, Outcome]]) -> tuple[str, bytes]:
    boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[str] = []
    for part, outcomes in results:
        if isinstance(part, Operation):
            op, response = outcomes[0]
            chunks.append(f"--{boundary}\r\n{_http_part(op, response)}\r\n")
            continue
        inner = f"changesetresponse_{uuid.uuid4()}"
        body = "".join(f"--{inner}\r\n{_http_part(op, r)}\r\n" for op, r in outcomes)
        chunks.append(
            f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{body}--{inner}--\r\n"
        )
    chunks.append(f"--{boundary}--\r\n")
    return f"multipart/mixed; boundary={boundary}", "".join(chunks).encode("utf-8")
