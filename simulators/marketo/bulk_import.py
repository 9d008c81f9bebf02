"""Bulk Lead Import: submit a file, read the job's status, its failures and its warnings.

    POST /bulk/v1/leads.json?format=csv[&lookupField=&partitionName=&listId=]
         multipart/form-data, the file in part ``file`` (``format`` etc. may be form fields too)
    GET  /bulk/v1/leads/batch/{batchId}.json
    GET  /bulk/v1/leads/batch/{batchId}/failures.json
    GET  /bulk/v1/leads/batch/{batchId}/warnings.json

A request body over 10 MB answers HTTP 413 (checked before anything else, in app.py). A job is
Queued, then Importing, then Complete (or Failed when the file cannot be read at all). Queueing
an 11th job (processing ones included) answers 1016 "Too many imports". Each row is an insert or
update by ``lookupField`` (``email`` by default; ``id`` makes it update-only), written as the REST
API writes (same validation, same activities). A row that cannot be written goes to the failures
file with an ``Import Failure Reason`` column; a row written with a value left out goes to the
warnings file with an ``Import Warning Reason`` column. Both files are in the job's format, with
the original header and values; they answer 404 when the job has none (as documented for custom
object imports).

Choices where the documentation is silent: an empty cell leaves the field as it is (an import
never blanks a value); a column naming no field fails every row that has a value in it; a
read-only column (``createdAt``, or ``id`` when it is not the lookup field) is left out with a
warning; a row with more or fewer cells than the header fails.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import HTTP
from typing import Any

from starlette.responses import Response

from simulators.marketo.bulk import DELIMITERS, csv_text, kept
from simulators.marketo.calls import RestCall
from simulators.marketo.faults import HttpFault, MarketoFault
from simulators.marketo.fields import FieldDef, coerce
from simulators.marketo.persons import API, Person
from simulators.marketo.state import SimState

CHUNK = 1_000  # rows imported per step (and per hold of the lock)
FAILURE_REASON = "Import Failure Reason"
WARNING_REASON = "Import Warning Reason"
Envelope = dict[str, Any]


class RowFailure(Exception):
    pass


@dataclass
class ImportJob:
    state: SimState
    batch_id: int
    format: str
    lookup: FieldDef
    data: bytes
    created_at: float
    status: str = "Queued"
    queued_at: float = 0.0
    finished_on: float | None = None
    message: str | None = None
    imported: int = 0
    header: list[str] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    _rows: list[list[str]] = field(default_factory=list)
    _position: int = 0
    _started: float = 0.0

    def to_json(self) -> Envelope:
        body: Envelope = {"batchId": self.batch_id, "importId": str(self.batch_id), "status": self.status}
        if self.status != "Queued":
            body.update(
                numOfLeadsProcessed=self.imported,
                numOfRowsFailed=len(self.failures),
                numOfRowsWithWarning=len(self.warnings),
            )
        if self.message:
            body["message"] = self.message
        return body

    @property
    def running(self) -> bool:
        return self.status == "Importing"

    # --- processing (the worker thread) ---------------------------------------------------------

    def begin(self, now: float) -> None:
        self.status = "Importing"
        self._started = time.monotonic()
        try:
            text = self.data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self._fail("The import file is not UTF-8 text")
            return
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[self.format]))
        self.data = b""
        if not rows or not any(cell.strip() for cell in rows[0]):
            self._fail("The import file has no header row")
            return
        self.header, self._rows = rows[0], [r for r in rows[1:] if r]
        if self.lookup.name not in self.header:
            self._fail(f"The import file has no '{self.lookup.name}' column (the lookup field)")

    def step(self) -> bool:
        with self.state.lock:
            if self.status != "Importing":
                return False
            budget = self._budget()
            if budget <= 0:
                return False
            for row in self._rows[self._position : self._position + budget]:
                self._import(row)
            self._position += budget
            if self._position >= len(self._rows):
                self._complete()
        return True

    def _budget(self) -> int:
        rate = self.state.bulk.limits.import_rows_per_second
        if rate <= 0:
            return CHUNK
        allowed = int((time.monotonic() - self._started) * rate) - self._position
        if allowed <= 0 and self._position >= len(self._rows):
            return 1
        return min(CHUNK, allowed)

    def _import(self, row: list[str]) -> None:
        try:
            values, key, warnings = self._values(row)
            self._write(values, key)
        except (RowFailure, MarketoFault) as why:
            reason = why.message if isinstance(why, MarketoFault) else str(why)
            self.failures.append([*row, reason])
            return
        self.imported += 1
        if warnings:
            self.warnings.append([*row, "; ".join(warnings)])

    def _values(self, row: list[str]) -> tuple[Person, Any, list[str]]:
        if len(row) != len(self.header):
            raise RowFailure(f"The row has {len(row)} values for {len(self.header)} columns")
        catalog = self.state.catalog
        raw: dict[str, Any] = {}
        warnings: list[str] = []
        for name, cell in zip(self.header, row, strict=True):
            if cell == "":
                continue  # an empty cell changes nothing
            known = catalog.get(name)
            if known is None:
                raise RowFailure(f"Field '{name}' not found")
            if known.read_only and known.name != self.lookup.name:
                warnings.append(f"Field '{name}' is read-only; its value was not imported")
                continue
            raw[name] = cell
        key = coerce(self.lookup, raw.get(self.lookup.name))
        skip = frozenset({"id"}) if self.lookup.name == "id" else frozenset()
        return self.state.persons.validate(raw, skip=skip), key, warnings

    def _write(self, values: Person, key: Any) -> None:
        persons = self.state.persons
        if key is None:
            raise RowFailure(f"Missing value for the required parameter '{self.lookup.name}'")
        matches = persons.find(self.lookup, [key])
        if len(matches) > 1:
            raise RowFailure("Multiple leads match the lookup criteria")
        if not matches:
            if self.lookup.name == "id":
                raise RowFailure("Lead not found")
            persons.create(values, API)
            return
        persons.update(int(str(matches[0]["id"])), values, API)

    def _fail(self, message: str) -> None:
        self.status, self.message = "Failed", message
        self.finished_on = self.state.clock()
        self._rows = []

    def _complete(self) -> None:
        self.status, self.finished_on = "Complete", self.state.clock()
        failed = len(self.failures)
        imported = f"{self.imported} records imported ({self.imported} members)"
        self.message = (
            f"Import completed with errors, {imported}, {failed} failed"
            if failed
            else f"Import succeeded, {imported}"
        )
        self._rows = []

    def file(self, issues: list[list[str]], reason: str) -> bytes:
        return csv_text([[*self.header, reason], *issues], DELIMITERS[self.format]).encode("utf-8")

    def discard(self) -> None:
        if self.running:
            self.status = "Failed"
            self.message = "The import was stopped"
        self._rows = []
        self.data = b""


# --- the endpoints --------------------------------------------------------------------------------


def submit(state: SimState, call: RestCall) -> Envelope:
    bulk = state.bulk
    params = {**{k: v[0] for k, v in call.params.items() if v}, **call.form}
    raw_format = params.get("format")
    if not raw_format:
        raise MarketoFault("701", "format cannot be blank")
    import_format = raw_format.upper()
    if import_format not in DELIMITERS:
        raise MarketoFault("1003", f"Invalid format '{raw_format}', expected csv, tsv or ssv")
    data = call.files.get("file")
    if data is None:
        raise MarketoFault("701", "file cannot be blank")
    lookup = state.catalog.require(params.get("lookupField") or "email")
    if not lookup.searchable:
        raise MarketoFault("1011", f"Field '{lookup.name}' not supported")
    partition = params.get("partitionName")
    if partition and partition != "Default":
        raise MarketoFault("1003", f"Partition '{partition}' not found")
    if params.get("listId"):
        raise MarketoFault("1013", f"Static list {params['listId']} not found")  # no lists here
    if len(bulk.imports) >= bulk.limits.max_queued:
        raise MarketoFault("1016", "Too many imports")
    job = ImportJob(state, bulk.next_batch_id, import_format, lookup, data, state.clock())
    bulk.next_batch_id += 1
    bulk.import_jobs[job.batch_id] = job
    bulk.imports.push(job)
    bulk.wake()
    return {"result": [job.to_json()]}


def status(state: SimState, call: RestCall) -> Envelope:
    return {"result": [_job(state, call).to_json()]}


def failures(state: SimState, call: RestCall) -> Response:
    return _issues_file(state, call, warnings=False)


def warnings(state: SimState, call: RestCall) -> Response:
    return _issues_file(state, call, warnings=True)


def _issues_file(state: SimState, call: RestCall, *, warnings: bool) -> Response:
    job = _visible(state).get(_batch_id(call))
    if job is None or job.status != "Complete":
        raise HttpFault(404, "Import job not found or not complete")
    issues = job.warnings if warnings else job.failures
    if not issues:
        raise HttpFault(404, f"The import job has no {'warnings' if warnings else 'failures'}")
    body = job.file(issues, WARNING_REASON if warnings else FAILURE_REASON)
    return Response(body, media_type="text/csv")


def _visible(state: SimState) -> dict[int, ImportJob]:
    """Jobs are kept seven days after they finished (``batchId`` validity)."""
    return kept(state.bulk.import_jobs, state.bulk.limits.file_retention_days, state.clock())


def _batch_id(call: RestCall) -> int:
    try:
        return int(call.path_params["batchId"])
    except ValueError:
        raise MarketoFault("1003", f"Invalid batchId '{call.path_params['batchId']}'") from None


def _job(state: SimState, call: RestCall) -> ImportJob:
    batch_id = _batch_id(call)
    job = _visible(state).get(batch_id)
    if job is None:
        raise MarketoFault("1013", f"Import job {batch_id} not found")
    return job


def parse_form(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """The fields and files of a multipart/form-data body (612/613 when it is not one)."""
    if not content_type.startswith("multipart/form-data"):
        raise MarketoFault("612", "Invalid Content Type")
    message = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=HTTP)
    if not message.is_multipart() or message.defects:
        raise MarketoFault("613", "Invalid Multipart Request")
    form: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise MarketoFault("613", "Invalid Multipart Request")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files[name] = data
        else:
            form[name] = data.decode("utf-8", "replace")
    return form, files
