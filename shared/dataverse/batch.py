"""``$batch`` bodies: build the multipart request, read the multipart response.

Parts are independent requests or change sets (a list of requests run atomically). Responses
come back in request order; a change set that failed answers with its failing part only.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from shared.dataverse.errors import error_from_part
from shared.dataverse.models import BatchRequest, BatchResponse

BatchPart = BatchRequest | Sequence[BatchRequest]
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def _request_text(request: BatchRequest, service_path: str) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if request.content_id:
        lines.append(f"Content-ID: {request.content_id}")
    target = request.path if request.path.startswith("$") else f"{service_path}/{request.path}"
    lines += ["", f"{request.method.upper()} {target} HTTP/1.1"]
    body = ""
    if request.body is not None:
        lines.append("Content-Type: application/json; type=entry")
        body = json.dumps(request.body, ensure_ascii=False)
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    lines += ["", body]
    return "\r\n".join(lines)


def build(parts: Sequence[BatchPart], service_path: str) -> tuple[str, bytes]:
    """(Content-Type, body). ``service_path`` is the path of the service root (/api/data/v9.2)."""
    boundary = f"batch_{uuid.uuid4()}"
    chunks = []
    for part in parts:
        if isinstance(part, BatchRequest):
            chunks.append(f"--{boundary}\r\n{_request_text(part, service_path)}\r\n")
            continue
        inner = f"changeset_{uuid.uuid4()}"
        body = "".join(
            f"--{inner}\r\n{_request_text(_with_id(r, i), service_path)}\r\n"
            for i, r in enumerate(part, start=1)
        )
        chunks.append(
            f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{body}--{inner}--\r\n"
        )
    chunks.append(f"--{boundary}--\r\n")
    return f'multipart/mixed; boundary="{boundary}"', "".join(chunks).encode("utf-8")


def _with_id(request: BatchRequest, index: int) -> BatchRequest:
    if request.content_id:
        return request
    return BatchRequest(request.method, request.path, request.body, request.headers, str(index))


def _split(text: str, boundary: str) -> list[str]:
    pieces = text.split(f"--{boundary}")[1:]
    out = []
    for piece in pieces:
        if piece.startswith("--"):
            break
        out.append(re.sub(r"^\r?\n", "", piece))
    return out


def _head(text: str) -> tuple[dict[str, str], str]:
    match = re.search(r"\r?\n\r?\n", text)
    head, rest = (text[: match.start()], text[match.end() :]) if match else (text, "")
    headers = {}
    for line in re.split(r"\r?\n", head):
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _response(text: str) -> BatchResponse:
    status_line, _, rest = text.partition("\n")
    status = int(status_line.split()[1])
    headers, body_text = _head(rest)
    body_text = body_text.strip()
    body: Any = None
    if body_text:
        try:
            body = json.loads(body_text)
        except ValueError:
            body = body_text
    error = error_from_part(status, headers, body) if status >= 400 else None
    return BatchResponse(status, headers, body, error)


def per_part(parts: Sequence[BatchPart], answers: list[BatchResponse]) -> list[list[BatchResponse]]:
    """The flat answers of :func:`parse`, per part: a request's one; a change set's every
    request's, or only its failing one's; none for a part the batch did not run (it stopped)."""
    out: list[list[BatchResponse]] = []
    at = 0
    for part in parts:
        size = (
            1
            if isinstance(part, BatchRequest) or (at < len(answers) and answers[at].status >= 400)
            else len(part)
        )
        out.append(answers[at : at + size])
        at += size
    return out


def carries(part: BatchPart, header: str) -> bool:
    """Whether the part (any request of a change set) carries ``header``."""
    requests = [part] if isinstance(part, BatchRequest) else list(part)
    return any(header in r.headers for r in requests)


def parse(content_type: str, payload: bytes) -> list[BatchResponse]:
    """Flatten the multipart response into one BatchResponse per answered request."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise ValueError("the $batch response is not multipart")
    out: list[BatchResponse] = []
    for part in _split(payload.decode("utf-8"), match.group(1)):
        headers, rest = _head(part)
        inner = _BOUNDARY.search(headers.get("content-type", ""))
        if headers.get("content-type", "").startswith("multipart/mixed") and inner:
            for sub in _split(rest, inner.group(1)):
                _, http = _head(sub)
                out.append(_response(http))
        else:
            out.append(_response(rest))
    return out
