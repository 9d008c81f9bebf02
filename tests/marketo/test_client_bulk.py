"""MarketoClient's bulk APIs over real HTTP against the simulator: export jobs across 31-day
windows, the file streamed as rows (resumed when the download breaks, checked against its
checksum), import files under the size limit, their failures and warnings per row, and the
bulk error codes mapped onto shared/errors.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import (
    NotFoundError,
    QuotaExhaustedError,
    ServiceUnavailableError,
    UnsupportedError,
    ValidationError,
)
from shared.marketo.bulk_extract import ExportJob, date_windows
from shared.marketo.bulk_import import ImportFile, import_files
from shared.marketo.client import MarketoClient
from shared.marketo.codes import BulkQueueFullError
from simulators.marketo.config import BulkLimits
from tests.marketo.conftest import Marketo

FILE = "GET /bulk/v1/leads/export/{exportId}/file.json"


def export_window(client: MarketoClient, fields: list[str], start: datetime, end: datetime) -> ExportJob:
    job = client.exports.create(fields, created=(start, end))
    client.exports.enqueue(job.export_id)
    return client.exports.wait(job.export_id, poll_seconds=0.02, timeout=60)


def test_a_year_of_persons_comes_back_through_31_day_windows(marketo: Marketo) -> None:
    seeded = [
        {
            "email": f"p{i}@x.example",
            "firstName": f"First {i}" if i % 3 else None,
            "createdAt": f"2025-{m:02d}-15T12:00:00Z",
        }
        for i, m in enumerate(range(1, 13))
    ]
    marketo.admin.seed_persons(seeded)
    client = marketo.client()
    windows = list(
        date_windows(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
    )
    assert len(windows) == 12
    found: list[Any] = []
    for start, end in windows:
        job = export_window(client, ["id", "email", "firstName"], start, end)
        assert job.status == "Completed"
        found.extend(client.exports.rows(job))
    assert sorted(found, key=lambda r: int(r["id"] or 0)) == [
        {"id": str(1001 + i), "email": p["email"], "firstName": p["firstName"]} for i, p in enumerate(seeded)
    ]
    assert client.calls[FILE] == 12


def test_the_file_is_streamed_and_resumed_where_the_download_broke(marketo: Marketo) -> None:
    marketo.admin.seed_persons(
        [
            {
                "email": f"p{i}@x.example",
                "company": f'Co, "{i}"\r\nLtd\r',
                "createdAt": "2026-03-02T00:00:00Z",
            }
            for i in range(2_000)
        ]
    )
    client = marketo.client()
    job = export_window(
        client, ["id", "company"], datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    )
    assert job.file_size is not None
    marketo.admin.set_bulk(cutDownloads=[job.file_size // 3, job.file_size // 2])
    rows = list(client.exports.rows(job, chunk_bytes=4_096))
    assert len(rows) == 2_000
    assert rows[1_999] == {"id": "3000", "company": 'Co, "1999"\r\nLtd\r'}
    assert client.calls[FILE] == 3  # two broken downloads, each resumed from the last whole row


def test_a_file_that_does_not_match_its_checksum_is_refused(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": "a@x.example", "createdAt": "2026-03-02T00:00:00Z"}])
    client = marketo.client()
    job = export_window(client, ["id"], datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    wrong = dataclasses.replace(job, file_checksum="sha256:" + "0" * 64)
    with pytest.raises(ServiceUnavailableError, match="checksum"):
        list(client.exports.rows(wrong))


def test_a_file_that_is_not_ready_is_not_found(marketo: Marketo) -> None:
    client = marketo.client()
    job = client.exports.create(
        ["id"], created=(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    )
    with pytest.raises(ValueError, match="not Completed"):
        list(client.exports.rows(job))
    with pytest.raises(NotFoundError, match="not completed"):
        list(client.exports.rows(dataclasses.replace(job, status="Completed")))


def test_an_expired_token_during_a_download_is_renewed(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": "a@x.example", "createdAt": "2026-03-02T00:00:00Z"}])
    client = marketo.client()
    job = export_window(
        client, ["email"], datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    )
    marketo.admin.expire_tokens()
    assert list(client.exports.rows(job)) == [{"email": "a@x.example"}]


def test_export_errors_are_typed(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(bulk=BulkLimits(unsupported_filters=frozenset({"updatedAt"}), max_queued=1))
    client = m.client()
    january = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))
    with pytest.raises(ValidationError) as too_long:
        client.exports.create(
            ["id"], created=(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
        )
    assert too_long.value.code == "1003"
    with pytest.raises(UnsupportedError) as unsupported:
        client.exports.create(["id"], updated=january)
    assert unsupported.value.code == "1035"
    m.admin.pause_bulk()
    first, second = (client.exports.create(["id"], created=january) for _ in range(2))
    assert client.exports.enqueue(first.export_id).status == "Queued"
    assert client.exports.enqueue(first.export_id).status in ("Queued", "Processing")  # again: harmless
    with pytest.raises(BulkQueueFullError) as full:
        client.exports.enqueue(second.export_id)
    assert (full.value.code, full.value.retry_after) == ("1029", 60.0)
    assert client.calls["POST /bulk/v1/leads/export/{exportId}/enqueue.json"] == 3  # not retried blindly
    assert client.exports.cancel(first.export_id).status == "Cancelled"
    m.admin.set_bulk(exportUsedBytes=500 * 1024 * 1024)
    with pytest.raises(QuotaExhaustedError) as quota:
        client.exports.create(["id"], created=january)
    assert quota.value.code == "1029"
    assert quota.value.retry_after is not None
    assert 0 < quota.value.retry_after <= 25 * 3600


def test_export_jobs_are_listed(marketo: Marketo) -> None:
    client = marketo.client()
    january = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))
    done = export_window(client, ["id"], *january)
    waiting = client.exports.create(["id"], created=january)
    assert [j.export_id for j in client.exports.list_jobs(["Completed"])] == [done.export_id]
    assert {j.export_id for j in client.exports.list_jobs()} == {done.export_id, waiting.export_id}


def test_import_files_are_imported_and_their_failures_and_warnings_read_per_row(marketo: Marketo) -> None:
    (kept,) = marketo.admin.seed_persons([{"email": "kept@x.example", "title": "CEO", "firstName": "Kay"}])
    records: list[dict[str, Any]] = [
        {"email": "kept@x.example", "firstName": None, "title": "CTO"},  # None leaves firstName
        {"email": "new@x.example", "firstName": 'Ana "Quote", Jr.', "unsubscribed": False},
        {"email": "bad-email", "firstName": "Bad"},
        {"email": "multi@x.example", "firstName": "Line\nbreak", "unsubscribed": "maybe"},
        {"email": "stamp@x.example", "createdAt": "2020-01-01T00:00:00Z"},
    ]
    fields = ["email", "firstName", "title", "unsubscribed", "createdAt"]
    files = list(import_files(fields, records, max_bytes=120))
    assert len(files) > 1
    assert sum(f.records for f in files) == len(records)
    client = marketo.client()
    failures: list[Any] = []
    warnings: list[Any] = []
    processed = 0
    for file in files:
        job = client.imports.wait(client.imports.submit(file).batch_id, poll_seconds=0.02, timeout=60)
        assert job.status == "Complete"
        processed += job.leads_processed
        failures.extend(client.imports.failures(job.batch_id))
        warnings.extend(client.imports.warnings(job.batch_id))
    assert processed == 3
    assert [(f.values["email"], f.reason) for f in failures] == [
        ("bad-email", "Invalid value 'bad-email'. Required of type 'email'"),
        ("multi@x.example", "Invalid value 'maybe'. Required of type 'boolean'"),
    ]
    assert failures[1].values["firstName"] == "Line\nbreak"
    assert [(w.values["email"], w.reason) for w in warnings] == [
        ("stamp@x.example", "Field 'createdAt' is read-only; its value was not imported")
    ]
    person = marketo.admin.person(kept)
    assert (person["firstName"], person["title"]) == ("Kay", "CTO")
    new = next(p for p in marketo.admin.persons() if p["email"] == "new@x.example")
    assert (new["firstName"], new["unsubscribed"]) == ('Ana "Quote", Jr.', False)


def test_import_by_id_and_a_full_queue(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(bulk=BulkLimits(max_queued=1))
    (lead_id,) = m.admin.seed_persons([{"email": "i@x.example"}])
    client = m.client()
    (file,) = import_files(["id", "title"], [{"id": lead_id, "title": "VP"}, {"id": 424242, "title": "X"}])
    m.admin.pause_bulk()
    job = client.imports.submit(file, lookup_field="id")
    with pytest.raises(BulkQueueFullError) as full:
        client.imports.submit(file, lookup_field="id")
    assert (full.value.code, full.value.retry_after) == ("1016", 30.0)
    assert client.calls["POST /bulk/v1/leads.json"] == 2
    m.admin.pause_bulk(False)
    done = client.imports.wait(job.batch_id, poll_seconds=0.02, timeout=60)
    assert (done.leads_processed, done.rows_failed) == (1, 1)
    assert [(f.values, f.reason) for f in client.imports.failures(done.batch_id)] == [
        ({"id": "424242", "title": "X"}, "Lead not found")
    ]
    assert list(client.imports.warnings(done.batch_id)) == []
    assert m.admin.person(lead_id)["title"] == "VP"


def test_an_oversized_import_file_is_refused_before_it_is_sent(marketo: Marketo) -> None:
    client = marketo.client()
    with pytest.raises(ValueError, match="under"):
        client.imports.submit(ImportFile(b"email\n" + b"x" * 10_000_000, 1))
    assert client.calls.total == 0


def test_an_unknown_export_is_not_found(marketo: Marketo) -> None:
    client = marketo.client()
    with pytest.raises(NotFoundError) as unknown:
        client.exports.enqueue("no-such-export")
    assert unknown.value.code == "1013"
