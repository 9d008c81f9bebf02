"""Bulk Lead Import: CSV files under Marketo's 10 MB, their jobs, failures and warnings.

``import_files`` writes records as CSV files, each under ``max_bytes`` (the header repeated in
each), streaming: records are read one at a time and a file is handed out as soon as the next
record would not fit. ``LeadImportClient.submit`` queues one file; Marketo imports it
asynchronously (insert or update by ``lookup_field``; ``id`` makes it update-only), at most 2
jobs at a time and 10 queued (1016 "Too many imports" raises BulkQueueFullError with
``retry_after``). When the job is Complete, the failures and warnings files give each rejected
(or partly written) row back with its values and Marketo's reason, so a failure can be reported
on its person.

An empty cell leaves the person's value as it is: a None is written as an empty cell, so an
import never blanks a field (what the initial sync wants: a blank never overwrites a value).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import NotFoundError
from shared.marketo.bulk import DELIMITERS, BulkJobClient, parse_records
from shared.marketo.transport import Call

IMPORTS = "/bulk/v1/leads.json"
BATCH = "/bulk/v1/leads/batch/{batchId}"
# Marketo refuses a request body over 10 MB (HTTP 413); the multipart envelope around the file
# takes a few hundred bytes, so a file stays well under.
MAX_FILE_BYTES = 9_900_000
FINISHED = frozenset({"Complete", "Failed"})
STATUS_POLL_SECONDS = 5.0  # the documented advice is every 5 to 30 s


@dataclass(frozen=True)
class ImportFile:
    """One import file: the CSV bytes (header included) and how many records it holds."""

    data: bytes
    records: int


def cell(value: Any) -> str:
    """A value as an import cell: None as empty (which leaves the field as it is), booleans in
    lower case, whole floats without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def import_files(
    fields: Sequence[str],
    records: Iterable[Mapping[str, Any]],
    *,
    max_bytes: int = MAX_FILE_BYTES,
    format: str = "CSV",
) -> Iterator[ImportFile]:
    """``records`` (field -> value; missing fields are empty cells) as files of at most
    ``max_bytes`` each, every one starting with the header of ``fields``. A record that cannot
    fit in a file on its own raises ValueError."""
    delimiter = DELIMITERS[format.upper()]
    header = _line([*fields], delimiter)
    if len(header) >= max_bytes:
        raise ValueError("the header alone does not fit in an import file")
    chunks: list[bytes] = [header]
    size, count = len(header), 0
    for record in records:
        line = _line([cell(record.get(name)) for name in fields], delimiter)
        if len(header) + len(line) > max_bytes:
            raise ValueError(f"a record of {len(line)} bytes does not fit in an import file")
        if size + len(line) > max_bytes:
            yield ImportFile(b"".join(chunks), count)
            chunks, size, count = [header], len(header), 0
        chunks.append(line)
        size += len(line)
        count += 1
    if count:
        yield ImportFile(b"".join(chunks), count)


def _line(values: list[str], delimiter: str) -> bytes:
    """One record, ended by ``\n``. The writer is told the terminator is CRLF so that it quotes a
    value holding a lone ``\r`` too (with ``\n`` alone it would not, and a reader would split
    the record there)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(values)
    return (buffer.getvalue()[:-2] + "\n").encode("utf-8")


@dataclass(frozen=True)
class ImportJob:
    """An import job as Get Import Lead Status shows it."""

    batch_id: int
    status: str  # Queued, Importing, Complete, Failed
    leads_processed: int = 0
    rows_failed: int = 0
    rows_with_warning: int = 0
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> ImportJob:
        return ImportJob(
            batch_id=int(raw["batchId"]),
            status=str(raw.get("status", "")),
            leads_processed=int(raw.get("numOfLeadsProcessed") or 0),
            rows_failed=int(raw.get("numOfRowsFailed") or 0),
            rows_with_warning=int(raw.get("numOfRowsWithWarning") or 0),
            message=str(raw["message"]) if raw.get("message") else None,
        )


@dataclass(frozen=True)
class ImportIssue:
    """A row of a failures or warnings file: the row's values as submitted, and the reason."""

    values: Mapping[str, str]
    reason: str


class LeadImportClient(BulkJobClient):
    """Bulk Lead Import calls of one :class:`~shared.marketo.MarketoClient` (its ``imports``)."""

    def submit(
        self,
        file: ImportFile | bytes,
        *,
        lookup_field: str = "email",
        partition_name: str | None = None,
        list_id: int | None = None,
        format: str = "csv",
    ) -> ImportJob:
        """Queue one file (see :func:`import_files`); the job comes back Queued."""
        data = file.data if isinstance(file, ImportFile) else file
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(f"an import file must stay under {MAX_FILE_BYTES:,} bytes, not {len(data):,}")
        params = [("format", format.lower()), ("lookupField", lookup_field)]
        if partition_name:
            params.append(("partitionName", partition_name))
        if list_id is not None:
            params.append(("listId", str(list_id)))
        call = Call(
            "POST",
            IMPORTS,
            params,
            idempotent=False,
            files={"file": (f"leads.{format.lower()}", data, "text/csv")},
        )
        return self._job(self._transport.request(call))

    def status(self, batch_id: int) -> ImportJob:
        call = Call("GET", f"{BATCH.format(batchId=batch_id)}.json", template=f"{BATCH}.json")
        return self._job(self._transport.request(call))

    def wait(
        self, batch_id: int, *, poll_seconds: float = STATUS_POLL_SECONDS, timeout: float | None = None
    ) -> ImportJob:
        """Poll until the job is Complete or Failed (TimeoutError after ``timeout``)."""
        return self._poll(lambda: self.status(batch_id), f"import {batch_id}", poll_seconds, timeout)

    def failures(self, batch_id: int, *, format: str = "csv") -> Iterator[ImportIssue]:
        """The rows Marketo could not import, with their ``Import Failure Reason``."""
        return self._issues(batch_id, "failures", format)

    def warnings(self, batch_id: int, *, format: str = "csv") -> Iterator[ImportIssue]:
        """The rows imported with a warning (a value left out), with the reason."""
        return self._issues(batch_id, "warnings", format)

    def _issues(self, batch_id: int, kind: str, format: str) -> Iterator[ImportIssue]:
        call = Call("GET", f"{BATCH.format(batchId=batch_id)}/{kind}.json", template=f"{BATCH}/{kind}.json")
        try:
            response = self._transport.download(call)
        except NotFoundError:
            return  # no such rows (Marketo answers 404 when the file would be empty)
        try:
            records = parse_records(response.content, DELIMITERS[format.upper()])
            header = next(records, None)
            if not header:
                return
            *names, _reason = header
            for record in records:
                *values, reason = record if len(record) > len(names) else [*record, ""]
                yield ImportIssue(dict(zip(names, values, strict=False)), reason)
        finally:
            response.close()

    @staticmethod
    def _job(body: Mapping[str, Any]) -> ImportJob:
        return ImportJob.from_json((body.get("result") or [{}])[0])
