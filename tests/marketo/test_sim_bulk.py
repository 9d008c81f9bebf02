"""Bulk Lead Extract and Bulk Lead Import in the simulator: job states, limits and their error
codes, files (CSV, Range, checksum, failures and warnings), the export quota, retention, and
that bulk calls count like every REST call."""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Callable
from typing import Any

import pytest

from simulators.marketo.config import BulkLimits
from tests.marketo.conftest import FakeClock, Marketo

EXPORT = "/bulk/v1/leads/export"
IMPORT = "/bulk/v1/leads.json"
BATCH = "/bulk/v1/leads/batch"
JANUARY = {"startAt": "2026-01-01T00:00:00Z", "endAt": "2026-01-31T23:59:59Z"}


def ok(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is True, body
    return dict(body["result"][0]) if body.get("result") else body


def error(response: Any) -> tuple[str, str]:
    body = response.json()
    assert body["success"] is False, body
    return body["errors"][0]["code"], body["errors"][0]["message"]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def create(m: Marketo, fields: list[str] | None = None, **body: Any) -> dict[str, Any]:
    body.setdefault("filter", {"createdAt": JANUARY})
    return ok(m.rest("POST", f"{EXPORT}/create.json", json={"fields": fields or ["id", "email"], **body}))


def export_status(m: Marketo, export_id: str) -> dict[str, Any]:
    return ok(m.rest("GET", f"{EXPORT}/{export_id}/status.json"))


def finished_export(m: Marketo, export_id: str) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (s := export_status(m, export_id))["status"] in ("Completed", "Failed") and s,
            "the export to finish",
        )
    )


def run_export(m: Marketo, fields: list[str] | None = None, **body: Any) -> tuple[dict[str, Any], bytes]:
    job = create(m, fields, **body)
    ok(m.rest("POST", f"{EXPORT}/{job['exportId']}/enqueue.json"))
    done = finished_export(m, job["exportId"])
    assert done["status"] == "Completed", done
    file = m.rest("GET", f"{EXPORT}/{job['exportId']}/file.json")
    assert file.status_code == 200
    return done, file.content


def submit(m: Marketo, text: str, **params: Any) -> Any:
    params.setdefault("format", "csv")
    return m.rest("POST", IMPORT, params=params, files={"file": ("leads.csv", text.encode(), "text/csv")})


def finished_import(m: Marketo, batch_id: int) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (
                (s := ok(m.rest("GET", f"{BATCH}/{batch_id}.json")))["status"] in ("Complete", "Failed") and s
            ),
            "the import to finish",
        )
    )


def run_import(m: Marketo, text: str, **params: Any) -> dict[str, Any]:
    return finished_import(m, ok(submit(m, text, **params))["batchId"])


def rows(data: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline=""), delimiter=delimiter))


# --- extract -----------------------------------------------------------------------------------


def test_an_export_runs_created_queued_processing_completed_and_serves_its_file(marketo: Marketo) -> None:
    marketo.admin.seed_persons(
        [
            {"email": "ana@x.example", "firstName": 'Ana "A"', "createdAt": "2026-01-03T10:00:00Z"},
            {"email": "bo@x.example", "lastName": "Ng, Jr.", "createdAt": "2026-01-31T23:59:59Z"},
            {"email": "cy@x.example", "unsubscribed": True, "createdAt": "2026-02-01T00:00:00Z"},
            {"email": "dee@x.example", "createdAt": "2025-12-31T23:59:59Z"},
        ]
    )
    job = create(marketo, ["id", "email", "firstName", "lastName", "unsubscribed"])
    assert job["status"] == "Created"
    assert job["format"] == "CSV"
    assert marketo.rest("GET", f"{EXPORT}/{job['exportId']}/file.json").status_code == 404
    queued = ok(marketo.rest("POST", f"{EXPORT}/{job['exportId']}/enqueue.json"))
    assert queued["status"] == "Queued"
    assert "queuedAt" in queued
    done = finished_export(marketo, job["exportId"])
    assert done["status"] == "Completed"
    assert {"startedAt", "finishedAt"} <= set(done)
    file = marketo.rest("GET", f"{EXPORT}/{job['exportId']}/file.json")
    assert rows(file.content) == [
        ["id", "email", "firstName", "lastName", "unsubscribed"],
        ["1001", "ana@x.example", 'Ana "A"', "null", "null"],
        ["1002", "bo@x.example", "null", "Ng, Jr.", "null"],
    ]
    assert done["numberOfRecords"] == 2
    assert done["fileSize"] == len(file.content)
    assert done["fileChecksum"] == "sha256:" + hashlib.sha256(file.content).hexdigest()


def test_the_file_is_served_in_ranges(marketo: Marketo) -> None:
    marketo.admin.seed_persons(
        [{"email": f"p{i}@x.example", "createdAt": "2026-01-10T00:00:00Z"} for i in range(50)]
    )
    done, whole = run_export(marketo)
    export_id = done["exportId"]
    part = marketo.rest("GET", f"{EXPORT}/{export_id}/file.json", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206
    assert part.content == whole[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(whole)}"
    assert part.headers["Accept-Ranges"] == "bytes"
    rest = marketo.rest("GET", f"{EXPORT}/{export_id}/file.json", headers={"Range": "bytes=100-"})
    assert whole[:100] + rest.content == whole


def test_header_names_and_formats(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": "a@x.example", "createdAt": "2026-01-05T00:00:00Z"}])
    _, data = run_export(marketo, ["id", "email"], format="TSV", columnHeaderNames={"email": "Email Address"})
    assert data == b"id\tEmail Address\n1001\ta@x.example\n"
    _, data = run_export(marketo, ["email"], format="SSV")
    assert data == b"email\na@x.example\n"


def test_the_updated_at_filter_selects_by_last_change(marketo: Marketo) -> None:
    marketo.admin.seed_persons(
        [
            {
                "email": "old@x.example",
                "createdAt": "2025-06-01T00:00:00Z",
                "updatedAt": "2026-01-10T00:00:00Z",
            },
            {
                "email": "new@x.example",
                "createdAt": "2026-01-02T00:00:00Z",
                "updatedAt": "2026-02-10T00:00:00Z",
            },
        ]
    )
    _, data = run_export(marketo, ["email"], filter={"updatedAt": JANUARY})
    assert rows(data) == [["email"], ["old@x.example"]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"filter": {"createdAt": {"startAt": "2026-01-01T00:00:00Z", "endAt": "2026-02-01T00:00:01Z"}}},
            "1003",
        ),
        (
            {"filter": {"createdAt": {"startAt": "2026-02-01T00:00:00Z", "endAt": "2026-01-01T00:00:00Z"}}},
            "1003",
        ),
        ({"filter": {"createdAt": {"startAt": "yesterday", "endAt": "2026-01-01T00:00:00Z"}}}, "704"),
        ({"filter": {"createdAt": {"startAt": "2026-01-01T00:00:00Z"}}}, "701"),
        ({"filter": {}}, "701"),
        ({"filter": {"createdAt": JANUARY, "updatedAt": JANUARY}}, "1003"),
        ({"filter": {"emailDomain": "x.example"}}, "1003"),
        ({"filter": {"staticListId": 42}}, "1013"),
        ({"fields": ["id", "noSuchField"], "filter": {"createdAt": JANUARY}}, "1006"),
        ({"fields": [], "filter": {"createdAt": JANUARY}}, "701"),
        ({"format": "XLSX", "filter": {"createdAt": JANUARY}}, "1003"),
        ({"columnHeaderNames": {"lastName": "Last"}, "filter": {"createdAt": JANUARY}}, "1003"),
    ],
)
def test_a_bad_export_is_refused_with_its_code(marketo: Marketo, body: dict[str, Any], code: str) -> None:
    answer = marketo.rest("POST", f"{EXPORT}/create.json", json={"fields": ["id"], **body})
    assert error(answer)[0] == code
    assert marketo.admin.bulk()["exports"] == []


def test_a_date_range_of_exactly_31_days_is_accepted(marketo: Marketo) -> None:
    window = {"startAt": "2026-01-01T00:00:00Z", "endAt": "2026-02-01T00:00:00Z"}
    assert create(marketo, filter={"createdAt": window})["status"] == "Created"


def test_filters_a_subscription_lacks_answer_1035(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(bulk=BulkLimits(unsupported_filters=frozenset({"updatedAt", "smartListId"})))
    for name, value in (("updatedAt", JANUARY), ("smartListId", 7)):
        answer = m.rest("POST", f"{EXPORT}/create.json", json={"fields": ["id"], "filter": {name: value}})
        assert error(answer) == ("1035", "Unsupported filter type for target subscription")


def test_two_exports_process_at_once_and_ten_wait_in_the_queue(marketo: Marketo) -> None:
    marketo.admin.pause_bulk()
    jobs = [create(marketo)["exportId"] for _ in range(11)]
    for export_id in jobs[:10]:
        ok(marketo.rest("POST", f"{EXPORT}/{export_id}/enqueue.json"))
    assert error(marketo.rest("POST", f"{EXPORT}/{jobs[10]}/enqueue.json")) == (
        "1029",
        "Too many jobs in queue",
    )
    assert error(marketo.rest("POST", f"{EXPORT}/{jobs[0]}/enqueue.json")) == ("1029", "Job already queued")

    def statuses() -> list[str]:
        return [export_status(marketo, e)["status"] for e in jobs[:10]]

    wait_for(lambda: statuses().count("Processing") == 2, "two jobs processing")
    assert statuses().count("Queued") == 8
    marketo.admin.pause_bulk(False)
    wait_for(lambda: statuses() == ["Completed"] * 10, "every job to complete")
    ok(marketo.rest("POST", f"{EXPORT}/{jobs[10]}/enqueue.json"))


def test_cancel_stops_a_job_wherever_it_is(marketo: Marketo) -> None:
    marketo.admin.pause_bulk()
    created = create(marketo)["exportId"]
    assert ok(marketo.rest("POST", f"{EXPORT}/{created}/cancel.json"))["status"] == "Cancelled"
    processing = create(marketo)["exportId"]
    ok(marketo.rest("POST", f"{EXPORT}/{processing}/enqueue.json"))
    wait_for(lambda: export_status(marketo, processing)["status"] == "Processing", "the job to start")
    assert ok(marketo.rest("POST", f"{EXPORT}/{processing}/cancel.json"))["status"] == "Cancelled"
    marketo.admin.pause_bulk(False)
    assert export_status(marketo, processing)["status"] == "Cancelled"
    assert marketo.rest("GET", f"{EXPORT}/{processing}/file.json").status_code == 404
    done, _ = run_export(marketo)
    assert error(marketo.rest("POST", f"{EXPORT}/{done['exportId']}/cancel.json"))[0] == "1003"
    # A cancelled job left the queue: its slot is free again.
    assert len([j for j in marketo.admin.bulk()["exports"] if j["status"] == "Cancelled"]) == 2


def test_the_daily_export_quota_stops_create_and_enqueue_until_midnight_central(
    start_marketo: Callable[..., Marketo], clock: FakeClock
) -> None:
    m = start_marketo(clock=clock, bulk=BulkLimits(export_daily_quota_bytes=100))
    m.admin.seed_persons(
        [{"email": f"person{i}@x.example", "createdAt": "2026-01-05T00:00:00Z"} for i in range(10)]
    )
    waiting = create(m)["exportId"]
    done, data = run_export(m)
    assert len(data) > 100
    assert m.admin.bulk()["exportUsedBytes"] == done["fileSize"]
    assert error(
        m.rest("POST", f"{EXPORT}/create.json", json={"fields": ["id"], "filter": {"createdAt": JANUARY}})
    ) == (
        "1029",
        "Export daily quota exceeded",
    )
    assert error(m.rest("POST", f"{EXPORT}/{waiting}/enqueue.json")) == (
        "1029",
        "Export daily quota exceeded",
    )
    clock.advance(86_400)
    assert m.admin.bulk()["exportUsedBytes"] == 0
    ok(m.rest("POST", f"{EXPORT}/{waiting}/enqueue.json"))


def test_files_are_kept_seven_days_and_statuses_thirty(
    start_marketo: Callable[..., Marketo], clock: FakeClock
) -> None:
    m = start_marketo(clock=clock)
    done, _ = run_export(m)
    export_id = done["exportId"]
    clock.advance(7 * 86_400 + 1)
    file = m.rest("GET", f"{EXPORT}/{export_id}/file.json")
    assert file.status_code == 404
    assert "expired" in file.text
    assert export_status(m, export_id)["status"] == "Completed"
    clock.advance(23 * 86_400)
    assert error(m.rest("GET", f"{EXPORT}/{export_id}/status.json"))[0] == "1013"


def test_get_export_jobs_lists_and_filters_by_status(marketo: Marketo) -> None:
    done, _ = run_export(marketo)
    created = create(marketo)["exportId"]
    listed = marketo.rest("GET", f"{EXPORT}.json", params={"status": "Completed"}).json()
    assert [j["exportId"] for j in listed["result"]] == [done["exportId"]]
    both = marketo.rest("GET", f"{EXPORT}.json", params={"batchSize": 1}).json()
    assert len(both["result"]) == 1
    assert both["moreResult"] is True
    rest = marketo.rest(
        "GET", f"{EXPORT}.json", params={"batchSize": 1, "nextPageToken": both["nextPageToken"]}
    )
    assert [j["exportId"] for j in both["result"] + rest.json()["result"]] == [done["exportId"], created]


def test_unknown_jobs(marketo: Marketo) -> None:
    assert error(marketo.rest("GET", f"{EXPORT}/no-such-job/status.json"))[0] == "1013"
    assert error(marketo.rest("POST", f"{EXPORT}/no-such-job/enqueue.json"))[0] == "1013"
    missing = marketo.rest("GET", f"{EXPORT}/no-such-job/file.json")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")
    assert error(marketo.rest("GET", f"{BATCH}/77.json"))[0] == "1013"


def test_bulk_calls_count_against_the_rate_limit_and_the_daily_quota(marketo: Marketo) -> None:
    marketo.admin.set_limits(rateLimit=3)
    export_id = create(marketo)["exportId"]
    export_status(marketo, export_id)
    assert marketo.rest("GET", f"{EXPORT}/{export_id}/file.json").status_code == 404
    assert error(marketo.rest("GET", f"{EXPORT}/{export_id}/status.json"))[0] == "606"
    calls = marketo.admin.calls()
    assert calls["byEndpoint"]["POST /bulk/v1/leads/export/create.json"] == 1
    assert calls["byEndpoint"]["GET /bulk/v1/leads/export/{exportId}/status.json"] == 2
    assert calls["byEndpoint"]["GET /bulk/v1/leads/export/{exportId}/file.json"] == 1
    assert calls["quotaUsed"] == 4
    marketo.admin.set_limits(rateLimit=100)
    marketo.admin.set_quota(daily=4)
    assert error(submit(marketo, "email\na@x.example\n"))[0] == "607"


# --- import ------------------------------------------------------------------------------------


def test_an_import_inserts_or_updates_by_email_as_the_rest_api_writes(marketo: Marketo) -> None:
    (ana,) = marketo.admin.seed_persons([{"email": "ana@x.example", "firstName": "Ana", "lastName": "Silva"}])
    job = ok(submit(marketo, "email,firstName,lastName\nana@x.example,,Lopes\nnew@x.example,New,Person\n"))
    assert job["status"] == "Queued"
    assert job["importId"] == str(job["batchId"])
    done = finished_import(marketo, job["batchId"])
    assert done == {
        "batchId": job["batchId"],
        "importId": str(job["batchId"]),
        "status": "Complete",
        "numOfLeadsProcessed": 2,
        "numOfRowsFailed": 0,
        "numOfRowsWithWarning": 0,
        "message": "Import succeeded, 2 records imported (2 members)",
    }
    person = marketo.admin.person(ana)
    assert (person["firstName"], person["lastName"]) == ("Ana", "Lopes")  # an empty cell changes nothing
    changes = marketo.admin.activities(ana, [13])
    assert [a["fields"][0]["name"] for a in changes] == ["lastName"]
    created = [p for p in marketo.admin.persons() if p["email"] == "new@x.example"]
    assert len(created) == 1
    assert marketo.admin.activities(created[0]["id"], [12])
    for name in ("failures", "warnings"):
        assert marketo.rest("GET", f"{BATCH}/{job['batchId']}/{name}.json").status_code == 404


def test_rows_that_cannot_be_written_are_in_the_failures_file_with_their_values(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": "dup@x.example"}, {"email": "dup@x.example"}])
    text = (
        "email,firstName,unsubscribed,company\n"
        'good@x.example,"Smith, ""Jo""",true,"Line\nbreak"\n'
        "not-an-email,Bad,false,\n"
        "ok@x.example,Fine,perhaps,\n"
        ",NoKey,true,\n"
        "dup@x.example,Twice,true,\n"
        "short@x.example,Short\n"
    )
    done = run_import(marketo, text)
    assert (done["numOfLeadsProcessed"], done["numOfRowsFailed"]) == (1, 5)
    assert done["message"] == "Import completed with errors, 1 records imported (1 members), 5 failed"
    failures = marketo.rest("GET", f"{BATCH}/{done['batchId']}/failures.json")
    assert failures.status_code == 200
    assert rows(failures.content) == [
        ["email", "firstName", "unsubscribed", "company", "Import Failure Reason"],
        ["not-an-email", "Bad", "false", "", "Invalid value 'not-an-email'. Required of type 'email'"],
        ["ok@x.example", "Fine", "perhaps", "", "Invalid value 'perhaps'. Required of type 'boolean'"],
        ["", "NoKey", "true", "", "Missing value for the required parameter 'email'"],
        ["dup@x.example", "Twice", "true", "", "Multiple leads match the lookup criteria"],
        ["short@x.example", "Short", "The row has 2 values for 4 columns"],
    ]
    good = next(p for p in marketo.admin.persons() if p["email"] == "good@x.example")
    assert (good["firstName"], good["company"]) == ('Smith, "Jo"', "Line\nbreak")


def test_read_only_columns_are_left_out_with_a_warning(marketo: Marketo) -> None:
    done = run_import(marketo, "email,createdAt,title\nw@x.example,2020-01-01T00:00:00Z,CEO\n")
    assert (done["numOfLeadsProcessed"], done["numOfRowsWithWarning"]) == (1, 1)
    warnings = marketo.rest("GET", f"{BATCH}/{done['batchId']}/warnings.json")
    assert rows(warnings.content) == [
        ["email", "createdAt", "title", "Import Warning Reason"],
        [
            "w@x.example",
            "2020-01-01T00:00:00Z",
            "CEO",
            "Field 'createdAt' is read-only; its value was not imported",
        ],
    ]


def test_lookup_by_id_only_updates(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "i@x.example"}])
    done = run_import(marketo, f"id\ttitle\n{lead_id}\tCTO\n99999\tCFO\n", format="tsv", lookupField="id")
    assert (done["numOfLeadsProcessed"], done["numOfRowsFailed"]) == (1, 1)
    assert marketo.admin.person(lead_id)["title"] == "CTO"
    failures = marketo.rest("GET", f"{BATCH}/{done['batchId']}/failures.json")
    assert rows(failures.content, "\t")[1] == ["99999", "CFO", "Lead not found"]


def test_a_column_naming_no_field_fails_its_rows(marketo: Marketo) -> None:
    done = run_import(marketo, "email,favouriteColour\nc@x.example,blue\nd@x.example,\n")
    assert (done["numOfLeadsProcessed"], done["numOfRowsFailed"]) == (1, 1)
    failures = marketo.rest("GET", f"{BATCH}/{done['batchId']}/failures.json")
    assert rows(failures.content)[1] == ["c@x.example", "blue", "Field 'favouriteColour' not found"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The import file has no header row"),
        ("firstName\nAna\n", "The import file has no 'email' column"),
    ],
)
def test_an_unreadable_file_fails_the_job(marketo: Marketo, text: str, message: str) -> None:
    done = run_import(marketo, text)
    assert done["status"] == "Failed"
    assert done["message"].startswith(message)


def test_bad_import_requests(marketo: Marketo) -> None:
    assert error(submit(marketo, "email\n", format=""))[0] == "701"
    assert error(submit(marketo, "email\n", format="xlsx"))[0] == "1003"
    assert error(submit(marketo, "email\n", lookupField="firstName"))[0] == "1011"
    assert error(submit(marketo, "email\n", listId="12"))[0] == "1013"
    not_multipart = marketo.rest("POST", IMPORT, params={"format": "csv"}, data=b"email\n")
    assert error(not_multipart)[0] == "612"
    no_file = marketo.rest("POST", IMPORT, params={"format": "csv"}, files={"other": (None, "x")})
    assert error(no_file)[0] == "701"
    form_format = marketo.rest("POST", IMPORT, files={"format": (None, "csv"), "file": ("l.csv", b"email\n")})
    assert ok(form_format)["status"] == "Queued"


def test_an_import_body_over_10_mb_answers_413(marketo: Marketo) -> None:
    row = "someone@x.example,Firstname,Lastname\n"
    limit = 10 * 1024 * 1024
    under = "email,firstName,lastName\n" + row * ((limit - 1_000) // len(row))
    assert ok(submit(marketo, under))["status"] == "Queued"
    over = under + row * (2_000 // len(row))
    answer = submit(marketo, over)
    assert answer.status_code == 413


def test_two_imports_run_at_once_and_ten_wait(marketo: Marketo) -> None:
    marketo.admin.pause_bulk()
    batches = [ok(submit(marketo, f"email\np{i}@x.example\n"))["batchId"] for i in range(10)]
    assert error(submit(marketo, "email\nlate@x.example\n")) == ("1016", "Too many imports")

    def statuses() -> list[str]:
        return [ok(marketo.rest("GET", f"{BATCH}/{b}.json"))["status"] for b in batches]

    wait_for(lambda: statuses().count("Importing") == 2, "two imports running")
    assert statuses().count("Queued") == 8
    marketo.admin.pause_bulk(False)
    wait_for(lambda: statuses() == ["Complete"] * 10, "every import to complete")
    assert len(marketo.admin.persons()) == 10
