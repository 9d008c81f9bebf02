"""Bulk Lead Extract: create, enqueue, status, file, cancel and list export jobs.

    POST /bulk/v1/leads/export/create.json          {fields, format, columnHeaderNames, filter}
    POST /bulk/v1/leads/export/{exportId}/enqueue.json
    GET  /bulk/v1/leads/export/{exportId}/status.json
    GET  /bulk/v1/leads/export/{exportId}/file.json  (Range: bytes=a-b -> 206)
    POST /bulk/v1/leads/export/{exportId}/cancel.json
    GET  /bulk/v1/leads/export.json?status=&batchSize=&nextPageToken=

Created -> Queued (enqueue) -> Processing -> Completed | Failed; Cancelled from any of the first
three. Enqueueing into a full queue (10 jobs, processing ones included), or once today's files
reach the export quota, answers 1029 with the documented message; so does enqueueing a job that
is not Created ("Job already queued"). A date filter spans at most 31 days. The file is written
while the job processes (the persons as they are then), one chunk under the lock at a time, and
is never partial: it is served only once the job has Completed (HTTP 404 with a plain-text body
before that, and after the retention period).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from starlette.responses import FileResponse, Response, StreamingResponse

from simulators.marketo.activities import Cursor
from simulators.marketo.bulk import DAY, DELIMITERS, BulkState, csv_text, kept
from simulators.marketo.calls import RestCall
from simulators.marketo.faults import HttpFault, MarketoFault
from simulators.marketo.fields import Value, format_datetime
from simulators.marketo.state import SimState

FILTERS = ("createdAt", "updatedAt", "staticListId", "staticListName", "smartListId", "smartListName")
DATE_FILTERS = ("createdAt", "updatedAt")
CHUNK = 5_000  # persons written per step (and per hold of the lock)
LIST_DAYS = 7  # Get Export Jobs lists the jobs of the past seven days
Envelope = dict[str, Any]


@dataclass
class ExportJob:
    state: SimState
    export_id: str
    fields: list[str]
    headers: list[str]
    format: str
    filter_type: str
    window: tuple[str, str]  # startAt, endAt as Marketo datetime text
    created_at: float
    status: str = "Created"
    queued_at: float = 0.0
    queued_on: float | None = None
    started_on: float | None = None
    finished_on: float | None = None
    records: int = 0
    file_size: int = 0
    checksum: str | None = None
    error: str | None = None
    _ids: list[int] = field(default_factory=list)
    _position: int = 0
    _started: float = 0.0
    _sha: Any = None
    _out: IO[bytes] | None = None
    # Held while the file is written or dropped: the worker writes outside the instance lock, and
    # a cancel or a reset may drop the file meanwhile. Taken after the instance lock, never before.
    _io: threading.Lock = field(default_factory=threading.Lock)

    # --- as the API shows it ------------------------------------------------------------------

    def to_json(self) -> Envelope:
        body: Envelope = {
            "exportId": self.export_id,
            "format": self.format,
            "status": self.status,
            "createdAt": format_datetime(self.created_at),
        }
        for name, moment in (
            ("queuedAt", self.queued_on),
            ("startedAt", self.started_on),
            ("finishedAt", self.finished_on),
        ):
            if moment is not None:
                body[name] = format_datetime(moment)
        if self.status == "Completed":
            body.update(numberOfRecords=self.records, fileSize=self.file_size, fileChecksum=self.checksum)
        if self.status == "Failed":
            body["errorMsg"] = self.error
        return body

    @property
    def path(self) -> Path:
        return self.state.bulk.file_path(f"{self.export_id}.{self.format.lower()}")

    @property
    def running(self) -> bool:
        return self.status == "Processing"

    # --- processing (the worker thread) ---------------------------------------------------------

    def begin(self, now: float) -> None:
        self.status, self.started_on = "Processing", now
        self._started = time.monotonic()
        start, end = self.window
        persons = self.state.persons
        if self.filter_type == "createdAt":
            self._ids = persons.created_between(start, end)
        else:
            self._ids = persons.ids()  # updatedAt: checked per person as it is written
        self._sha = hashlib.sha256()
        self._out = self.path.open("wb")
        self._write([self.headers])

    def step(self) -> bool:
        with self.state.lock:
            if self.status != "Processing":
                return False
            budget = self._budget()
            if budget <= 0:
                return False
            chunk = self._ids[self._position : self._position + budget]
            self._position += len(chunk)
            rows = self._rows(chunk)
            done = self._position >= len(self._ids)
        self._write(rows)
        self.records += len(rows)
        if done:
            self._finish()
        return True

    def _budget(self) -> int:
        rate = self.state.bulk.limits.extract_rows_per_second
        if rate <= 0:
            return CHUNK
        allowed = int((time.monotonic() - self._started) * rate) - self._position
        if allowed <= 0 and self._position >= len(self._ids):
            return 1  # nothing left to write: let the job finish
        return min(CHUNK, allowed)

    def _rows(self, ids: list[int]) -> list[list[str]]:
        start, end = self.window
        rows = []
        for lead_id in ids:
            person = self.state.persons.get(lead_id)
            if person is None:
                continue
            if self.filter_type == "updatedAt" and not start <= str(person.get("updatedAt")) <= end:
                continue
            rows.append([_cell(person.get(name)) for name in self.fields])
        return rows

    def _write(self, rows: list[list[str]]) -> None:
        data = csv_text(rows, DELIMITERS[self.format]).encode("utf-8")
        with self._io:
            if self._out is None:
                return  # dropped meanwhile
            self._out.write(data)
            self._sha.update(data)
            self.file_size += len(data)

    def _finish(self) -> None:
        with self._io:
            if self._out is None:
                return
            self._out.close()
            self._out = None
        with self.state.lock:
            if self.status != "Processing":
                self.path.unlink(missing_ok=True)
                return
            self.status, self.finished_on = "Completed", self.state.clock()
            self.checksum = f"sha256:{self._sha.hexdigest()}"
            self.state.bulk.spend_export(self.file_size)
            self._ids = []

    def discard(self) -> None:
        """Drop the file (cancel, reset, retention); a job still processing stops."""
        if self.running:
            self.status = "Cancelled"
        with self._io:
            if self._out is not None:
                self._out.close()
                self._out = None
            self.path.unlink(missing_ok=True)
        self._ids = []


def _cell(value: Value) -> str:
    """How the export writes a value: empty as ``null``, booleans in lower case."""
    if value is None or value == "":
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- the endpoints --------------------------------------------------------------------------------


def create(state: SimState, call: RestCall) -> Envelope:
    body = call.body if isinstance(call.body, dict) else {}
    bulk = state.bulk
    fields = _fields(state, body.get("fields"))
    export_format = str(body.get("format") or "CSV").upper()
    if export_format not in DELIMITERS:
        raise MarketoFault("1003", f"Invalid format '{body.get('format')}', expected CSV, TSV or SSV")
    headers = _headers(fields, body.get("columnHeaderNames"))
    filter_type, window = _filter(state, body.get("filter"))
    _check_quota(bulk)
    job = ExportJob(
        state, str(uuid.uuid4()), fields, headers, export_format, filter_type, window, state.clock()
    )
    bulk.export_jobs[job.export_id] = job
    return {"result": [job.to_json()]}


def enqueue(state: SimState, call: RestCall) -> Envelope:
    job = _job(state, call)
    bulk = state.bulk
    if job.status != "Created":
        raise MarketoFault("1029", "Job already queued")
    if len(bulk.exports) >= bulk.limits.max_queued:
        raise MarketoFault("1029", "Too many jobs in queue")
    _check_quota(bulk)
    job.status, job.queued_on = "Queued", state.clock()
    bulk.exports.push(job)
    bulk.wake()
    return {"result": [job.to_json()]}


def status(state: SimState, call: RestCall) -> Envelope:
    return {"result": [_job(state, call).to_json()]}


def cancel(state: SimState, call: RestCall) -> Envelope:
    job = _job(state, call)
    if job.status not in ("Created", "Queued", "Processing"):
        raise MarketoFault("1003", f"Cannot cancel a job in status '{job.status}'")
    state.bulk.exports.discard(job)
    job.discard()
    job.status = "Cancelled"
    return {"result": [job.to_json()]}


def file(state: SimState, call: RestCall) -> Response:
    job = _visible(state).get(call.path_params["exportId"])
    if job is None or job.status != "Completed":
        raise HttpFault(404, "Export job not found or not completed")
    assert job.finished_on is not None
    if state.clock() - job.finished_on > state.bulk.limits.file_retention_days * DAY or not job.path.exists():
        raise HttpFault(404, "Export file has expired")
    if state.bulk.cut_downloads:
        return _cut(job.path, call.headers.get("range"), state.bulk.cut_downloads.popleft())
    return FileResponse(job.path, media_type="text/csv")


def _cut(path: Path, byte_range: str | None, after: int) -> Response:
    """A download that breaks after ``after`` bytes (an injected fault): the length announced
    is the whole answer's, the connection closes short of it. ``bytes=a-`` ranges are served."""
    size = path.stat().st_size
    start = 0
    if byte_range and byte_range.startswith("bytes=") and byte_range.endswith("-"):
        start = int(byte_range[6:-1] or 0)

    async def body() -> Any:
        with path.open("rb") as source:
            source.seek(start)
            yield source.read(after)

    headers = {"Content-Length": str(size - start), "Accept-Ranges": "bytes"}
    if start:
        headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
    status = 206 if start else 200
    return StreamingResponse(body(), status_code=status, media_type="text/csv", headers=headers)


def list_jobs(state: SimState, call: RestCall) -> Envelope:
    wanted = {s.casefold() for s in call.values("status")}
    if wanted - {
        s.casefold()
        for s in ("Created", "Queued", "Processing", "Cancelled", "Canceled", "Completed", "Failed")
    }:
        raise MarketoFault("1003", f"Invalid status filter '{call.first('status')}'")
    if "canceled" in wanted:
        wanted.add("cancelled")
    size = call.batch_size(state.gate.limits.max_batch)
    token = call.first("nextPageToken")
    offset = Cursor.decode(token).position if token else 0
    since = state.clock() - LIST_DAYS * DAY
    jobs = [
        j
        for j in _visible(state).values()
        if j.created_at >= since and (not wanted or j.status.casefold() in wanted)
    ]
    page = jobs[offset : offset + size]
    more = offset + size < len(jobs)
    answer: Envelope = {"result": [j.to_json() for j in page], "moreResult": more}
    if more:
        answer["nextPageToken"] = Cursor(offset + size, 0.0).encode()
    return answer


# --- validation -----------------------------------------------------------------------------------


def _fields(state: SimState, raw: object) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise MarketoFault("701", "fields cannot be blank")
    names = [str(name) for name in raw]
    for name in names:
        state.catalog.require(name)
    return names


def _headers(fields: list[str], raw: object) -> list[str]:
    if raw is None:
        return list(fields)
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise MarketoFault("1003", "columnHeaderNames must map field names to header names")
    unknown = set(raw) - set(fields)
    if unknown:
        raise MarketoFault("1003", f"columnHeaderNames names fields not exported: {sorted(unknown)}")
    return [raw.get(name, name) for name in fields]


def _filter(state: SimState, raw: object) -> tuple[str, tuple[str, str]]:
    if not isinstance(raw, dict) or not raw:
        raise MarketoFault("701", "filter cannot be blank")
    unknown = [k for k in raw if k not in FILTERS]
    if unknown:
        raise MarketoFault("1003", f"Invalid filter type '{unknown[0]}'")
    if len(raw) > 1:
        raise MarketoFault("1003", "Only one filter type may be specified per export job")
    ((name, value),) = raw.items()
    if name in state.bulk.limits.unsupported_filters:
        raise MarketoFault("1035", "Unsupported filter type for target subscription")
    if name not in DATE_FILTERS:
        # The simulator has no static or smart lists: every list id or name is unknown.
        raise MarketoFault("1013", f"Object not found: {name} {value}")
    return name, _window(state, name, value)


def _window(state: SimState, name: str, raw: object) -> tuple[str, str]:
    if not isinstance(raw, dict) or not raw.get("startAt") or not raw.get("endAt"):
        raise MarketoFault("701", f"{name}.startAt and {name}.endAt cannot be blank")
    start, end = _instant(raw["startAt"]), _instant(raw["endAt"])
    if end < start:
        raise MarketoFault("1003", f"{name}.endAt is before {name}.startAt")
    days = state.bulk.limits.max_date_range_days
    if end - start > timedelta(days=days):
        raise MarketoFault("1003", f"The {name} date range must be {days} days or fewer")
    return format_datetime(start.timestamp()), format_datetime(end.timestamp())


def _instant(raw: object) -> datetime:
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise MarketoFault("704", f"Invalid date format '{raw}'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_quota(bulk: BulkState) -> None:
    if bulk.export_used >= bulk.limits.export_daily_quota_bytes:
        raise MarketoFault("1029", "Export daily quota exceeded")


def _visible(state: SimState) -> dict[str, ExportJob]:
    """The jobs whose status is still kept (30 days after they finished)."""
    return kept(state.bulk.export_jobs, state.bulk.limits.status_retention_days, state.clock())


def _job(state: SimState, call: RestCall) -> ExportJob:
    export_id = call.path_params["exportId"]
    job = _visible(state).get(export_id)
    if job is None:
        raise MarketoFault("1013", f"Export job '{export_id}' not found")
    return job
