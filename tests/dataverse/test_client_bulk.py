"""Whole-table reads and bulk writes through the client, over HTTP against the simulator: pages
of up to 5,000 rows with the selected columns, resumable from a page's link, an optional
``modifiedon ge`` filter; UpdateMultiple/UpsertMultiple at 1,000 rows a request with an outcome
per row, a bad row failing alone; and rules of the chunking that hold for every input."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.dataverse.client import MAX_BULK_ROWS, DataverseClient, bulk_chunks
from shared.errors import NotFoundError, ValidationError
from simulators.dataverse.admin import DataverseAdmin

from .conftest import lead

SELECT = ["leadid", "emailaddress1", "modifiedon"]


def seed(admin: DataverseAdmin, count: int, **extra: Any) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 1_000):
        rows = [
            lead(emailaddress1=f"p{i}@x.example", **extra) for i in range(start, min(count, start + 1_000))
        ]
        ids.extend(admin.seed("lead", rows))
    return ids


def test_a_table_is_read_in_pages_of_5000_with_only_the_selected_columns(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    ids = seed(admin, 5_001)
    pages = list(client.read_table("leads", SELECT))
    assert [len(p.rows) for p in pages] == [5_000, 1]
    assert pages[0].next_link is not None
    assert pages[1].next_link is None
    assert sorted(r["leadid"] for p in pages for r in p.rows) == sorted(ids)
    assert {k for p in pages for r in p.rows for k in r} <= {*SELECT, "@odata.etag"}
    assert client.calls["GET leads"] == 2


def test_a_read_resumes_after_the_last_page_it_finished(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    ids = seed(admin, 2_500)
    first = next(client.read_table("leads", SELECT, page_size=1_000))
    assert first.next_link is not None
    client.create("leads", lead(emailaddress1="written@between.example"))  # pages are keyset pages
    rest = list(client.read_table("leads", SELECT, resume_from=first.next_link))
    seen = [r["leadid"] for r in first.rows] + [r["leadid"] for p in rest for r in p.rows]
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)


def test_only_rows_modified_since_a_moment(client: DataverseClient, admin: DataverseAdmin) -> None:
    admin.seed("lead", [lead(modifiedon="2025-01-01T00:00:00Z"), lead(modifiedon="2026-01-01T00:00:00Z")])
    admin.seed("lead", [lead(modifiedon="2026-06-01T00:00:00Z")])
    rows = [
        r
        for p in client.read_table("leads", SELECT, modified_since=datetime(2026, 1, 1, tzinfo=UTC))
        for r in p.rows
    ]
    assert sorted(r["modifiedon"] for r in rows) == ["2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"]


def test_updates_go_1000_a_request_and_a_bad_row_fails_alone(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    ids = seed(admin, 2_500)
    records = [{"leadid": i, "jobtitle": f"T{n}"} for n, i in enumerate(ids)]
    records[1_234]["jobtitle"] = "x" * 500  # over MaxLength: the platform refuses it
    results = list(client.update_rows("leads", "lead", records))
    assert [r.index for r in results] == list(range(2_500))
    failed = [r for r in results if not r.ok]
    assert [r.index for r in failed] == [1_234]
    assert isinstance(failed[0].error, ValidationError)
    titles = {r["leadid"]: r["jobtitle"] for r in admin.rows("lead")}
    assert titles[ids[0]] == "T0"
    assert titles[ids[1_235]] == "T1235"
    assert titles[ids[1_234]] is None
    assert client.calls["POST leads/UpdateMultiple"] == 3
    assert client.calls["POST $batch"] == 1  # the failed request's 1,000 rows, one by one


def test_a_row_that_is_gone_fails_alone(client: DataverseClient, admin: DataverseAdmin) -> None:
    ids = seed(admin, 3)
    client.delete("leads", ids[1])
    results = list(client.update_rows("leads", "lead", [{"leadid": i, "jobtitle": "CEO"} for i in ids]))
    assert [type(r.error) for r in results] == [type(None), NotFoundError, type(None)]


def test_a_row_updated_twice_goes_in_a_later_request(client: DataverseClient, admin: DataverseAdmin) -> None:
    ids = seed(admin, 2)
    records = [
        {"leadid": ids[0], "jobtitle": "first"},
        {"leadid": ids[1], "jobtitle": "other"},
        {"leadid": ids[0], "jobtitle": "second"},  # the same row again: a later request
    ]
    results = list(client.update_rows("leads", "lead", records))
    assert [r.ok for r in results] == [True, True, True]
    titles = {r["leadid"]: r["jobtitle"] for r in admin.rows("lead")}
    assert titles[ids[0]] == "second"
    assert titles[ids[1]] == "other"
    assert client.calls["POST leads/UpdateMultiple"] == 2


def test_tables_without_bulk_messages_use_batch(client: DataverseClient, admin: DataverseAdmin) -> None:
    ids = seed(admin, 4)
    admin.set_bulk_support("lead", False)
    records = [{"leadid": i, "jobtitle": "x" * 500 if n == 2 else "ok"} for n, i in enumerate(ids)]
    results = list(client.update_rows("leads", "lead", records))
    assert [r.ok for r in results] == [True, True, False, True]
    assert sorted(r["jobtitle"] or "" for r in admin.rows("lead")) == ["", "ok", "ok", "ok"]
    assert client.calls["POST leads/UpdateMultiple"] == 0


def test_a_bulk_request_takes_at_most_1000_rows(client: DataverseClient) -> None:
    with pytest.raises(ValueError, match="at most 1000"):
        client.update_multiple("leads", "lead", [{"leadid": str(i)} for i in range(1_001)])
    assert client.calls.total == 0


def test_rows_are_taken_from_the_input_as_they_are_sent(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    ids = seed(admin, 1_500)
    taken = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal taken
        for i in ids:
            taken += 1
            yield {"leadid": i, "jobtitle": "streamed"}

    results = client.update_rows("leads", "lead", records())
    assert next(results).ok
    assert taken <= MAX_BULK_ROWS + 1  # one request's rows (and the one that closed it), no more
    assert sum(1 for _ in results) == 1_499


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=200), st.integers(min_value=1, max_value=50))
def test_chunks_keep_order_size_and_one_row_per_key(keys: list[int], size: int) -> None:
    chunks = list(bulk_chunks(keys, str, size))
    assert [item for chunk in chunks for item in chunk] == list(enumerate(keys))
    for chunk in chunks:
        assert 0 < len(chunk) <= size
        assert len({key for _, key in chunk}) == len(chunk)
    for before, after in itertools.pairwise(chunks):
        # a chunk closes early only when the next key was already in it
        assert len(before) == size or after[0][1] in {key for _, key in before}
