"""Bulk Lead Extract: export jobs, the 31-day windows they need, and their file read as rows.

A job is created with the fields and one filter (``createdAt`` or ``updatedAt``, each a window of
at most 31 days), enqueued, polled until Completed (Marketo changes a status at most once a
minute), then its file is downloaded. ``date_windows`` cuts any period into windows a job
accepts. ``LeadExportClient.rows`` reads the file as one streamed download, parsing whole
records as they arrive, so memory stays bounded whatever the file's size; if the connection
breaks, it resumes with a ``Range`` request from the last whole record, and at the end it checks
the size and the SHA-256 checksum the job reported (a file that does not match raises
ServiceUnavailableError: download it again). Empty values come back as None (Marketo writes
them as ``null``, so a value that is literally "null" reads as None too).

The queue (10 jobs, 2 processing) and the daily export allowance (500 MB of files) belong to the
instance, shared with other integrations: a full queue raises BulkQueueFullError, a spent
allowance QuotaExhaustedError, both with ``retry_after``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from shared.errors import ConflictError, ServiceUnavailableError
from shared.marketo.bulk import DELIMITERS, BulkJobClient, parse_records
from shared.marketo.codes import SERVICE
from shared.marketo.models import parse_datetime
from shared.marketo.transport import Call

log = logging.getLogger(__name__)

EXPORTS = "/bulk/v1/leads/export"
JOB = f"{EXPORTS}/{{exportId}}"
MAX_WINDOW_DAYS = 31
FINISHED = frozenset({"Completed", "Failed", "Cancelled"})
CHUNK_BYTES = 256 * 1024
MAX_RESUMES = 5
STATUS_POLL_SECONDS = 60.0  # a job's status changes at most once a minute


@dataclass(frozen=True)
class ExportJob:
    """An export job as Get Export Lead Job Status shows it (late members None until reached)."""

    export_id: str
    status: str  # Created, Queued, Processing, Completed, Failed, Cancelled
    format: str
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    number_of_records: int | None = None
    file_size: int | None = None
    file_checksum: str | None = None  # "sha256:<hex>"
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> ExportJob:
        def moment(name: str) -> datetime | None:
            value = raw.get(name)
            return parse_datetime(str(value)) if value else None

        def number(name: str) -> int | None:
            value = raw.get(name)
            return int(value) if value is not None else None

        return ExportJob(
            export_id=str(raw["exportId"]),
            status="Cancelled" if raw.get("status") == "Canceled" else str(raw.get("status", "")),
            format=str(raw.get("format") or "CSV").upper(),
            created_at=moment("createdAt"),
            queued_at=moment("queuedAt"),
            started_at=moment("startedAt"),
            finished_at=moment("finishedAt"),
            number_of_records=number("numberOfRecords"),
            file_size=number("fileSize"),
            file_checksum=str(raw["fileChecksum"]) if raw.get("fileChecksum") else None,
            error=str(raw["errorMsg"]) if raw.get("errorMsg") else None,
        )


def date_windows(
    start: datetime, end: datetime, *, days: int = MAX_WINDOW_DAYS
) -> Iterator[tuple[datetime, datetime]]:
    """Inclusive whole-second windows ``(startAt, endAt)`` covering ``[start, end]`` in order,
    without gap or overlap, each spanning less than ``days`` days (a job's date filter allows
    at most 31). Both ends are included by Marketo, so the next window starts one second on."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    low = start.astimezone(UTC).replace(microsecond=0)
    high = end.astimezone(UTC).replace(microsecond=0)
    span = timedelta(days=days) - timedelta(seconds=1)
    while low <= high:
        upper = min(low + span, high)
        yield low, upper
        low = upper + timedelta(seconds=1)


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("export windows must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RecordSplitter:
    """Cuts a byte stream of delimited text at record ends. A newline ends a record when the
    quotes before it in the record are balanced (RFC 4180: a quoted value may hold newlines and
    doubled quotes), so each block :meth:`feed` returns parses on its own."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """The whole records completed by ``data`` (possibly none); the rest waits."""
        buffer = self._pending + data
        end = buffer.rfind(b"\n")
        quotes = buffer.count(b'"', 0, end) if end >= 0 else 0
        while end >= 0:
            if quotes % 2 == 0:
                self._pending = buffer[end + 1 :]
                return buffer[: end + 1]
            previous = buffer.rfind(b"\n", 0, end)
            quotes -= buffer.count(b'"', max(previous, 0), end)
            end = previous
        self._pending = buffer
        return b""

    def flush(self) -> bytes:
        """The last record, when the file does not end with a newline."""
        rest, self._pending = self._pending, b""
        return rest

    def reset(self) -> None:
        self._pending = b""


class LeadExportClient(BulkJobClient):
    """Bulk Lead Extract calls of one :class:`~shared.marketo.MarketoClient` (its ``exports``)."""

    def create(
        self,
        fields: Sequence[str],
        *,
        created: tuple[datetime, datetime] | None = None,
        updated: tuple[datetime, datetime] | None = None,
        format: str = "CSV",
        header_names: Mapping[str, str] | None = None,
    ) -> ExportJob:
        """A Created job exporting ``fields`` of the persons created (or last updated) in the
        inclusive window; exactly one of ``created``/``updated``, spanning at most 31 days."""
        if created is not None and updated is None:
            name, (start, end) = "createdAt", created
        elif updated is not None and created is None:
            name, (start, end) = "updatedAt", updated
        else:
            raise ValueError("give exactly one of created= and updated=")
        body: dict[str, Any] = {
            "fields": list(fields),
            "format": format.upper(),
            "filter": {name: {"startAt": _stamp(start), "endAt": _stamp(end)}},
        }
        if header_names:
            body["columnHeaderNames"] = dict(header_names)
        call = Call("POST", f"{EXPORTS}/create.json", json_body=body, idempotent=False)
        return self._job(self._transport.request(call))

    def enqueue(self, export_id: str) -> ExportJob:
        """Queue a Created job. Enqueueing it again is harmless: its current status comes back."""
        call = self._call("POST", export_id, "enqueue", idempotent=False)
        try:
            return self._job(self._transport.request(call))
        except ConflictError:  # 1029 "Job already queued"
            return self.status(export_id)

    def status(self, export_id: str) -> ExportJob:
        return self._job(self._transport.request(self._call("GET", export_id, "status")))

    def cancel(self, export_id: str) -> ExportJob:
        return self._job(self._transport.request(self._call("POST", export_id, "cancel", idempotent=False)))

    def list_jobs(self, statuses: Sequence[str] = ()) -> Iterator[ExportJob]:
        """This API user's export jobs of the past seven days (optionally of some statuses)."""
        params = [("batchSize", "300")]
        if statuses:
            params.append(("status", ",".join(statuses)))
        token: str | None = None
        while True:
            paged = [*params, ("nextPageToken", token)] if token else params
            body = self._transport.request(Call("GET", f"{EXPORTS}.json", paged))
            yield from (ExportJob.from_json(j) for j in body.get("result") or [])
            token = body.get("nextPageToken")
            if not body.get("moreResult") or not token:
                return

    def wait(
        self, export_id: str, *, poll_seconds: float = STATUS_POLL_SECONDS, timeout: float | None = None
    ) -> ExportJob:
        """Poll until the job is Completed, Failed or Cancelled (TimeoutError after ``timeout``)."""
        return self._poll(lambda: self.status(export_id), f"export {export_id}", poll_seconds, timeout)

    def rows(self, job: ExportJob, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[dict[str, str | None]]:
        """The Completed job's file, one person at a time (header names -> values)."""
        if job.status != "Completed":
            raise ValueError(f"export {job.export_id} is {job.status}, not Completed")
        header: list[str] | None = None
        for record in self._records(job, chunk_bytes):
            if header is None:
                header = record
                continue
            yield {
                name: (None if value == "null" else value)
                for name, value in zip(header, record, strict=False)
            }

    def _records(self, job: ExportJob, chunk_bytes: int) -> Iterator[list[str]]:
        delimiter = DELIMITERS.get(job.format, ",")
        splitter = RecordSplitter()
        digest = hashlib.sha256()
        offset = 0
        resumes = 0
        while True:
            response = self._transport.download(self._call("GET", job.export_id, "file"), offset=offset)
            try:
                for data in response.iter_content(chunk_bytes):
                    block = splitter.feed(data)
                    if block:
                        digest.update(block)
                        offset += len(block)
                        yield from parse_records(block, delimiter)
                break
            except requests.RequestException as exc:
                resumes += 1
                if resumes > MAX_RESUMES:
                    raise ServiceUnavailableError(
                        f"export {job.export_id}: the download broke {resumes} times", service=SERVICE
                    ) from exc
                log.info("marketo export %s: download broke at byte %d, resuming", job.export_id, offset)
                splitter.reset()
            finally:
                response.close()
        tail = splitter.flush()
        if tail:
            digest.update(tail)
            offset += len(tail)
            yield from parse_records(tail, delimiter)
        _verify(job, offset, f"sha256:{digest.hexdigest()}")

    def _call(self, method: str, export_id: str, action: str, *, idempotent: bool = True) -> Call:
        return Call(
            method,
            f"{EXPORTS}/{export_id}/{action}.json",
            idempotent=idempotent,
            template=f"{JOB}/{action}.json",
        )

    @staticmethod
    def _job(body: Mapping[str, Any]) -> ExportJob:
        return ExportJob.from_json((body.get("result") or [{}])[0])


def _verify(job: ExportJob, size: int, checksum: str) -> None:
    if job.file_size is not None and size != job.file_size:
        raise ServiceUnavailableError(
            f"export {job.export_id}: read {size} bytes of {job.file_size}", service=SERVICE
        )
    if job.file_checksum is not None and checksum != job.file_checksum:
        raise ServiceUnavailableError(
            f"export {job.export_id}: the file's checksum does not match", service=SERVICE
        )
