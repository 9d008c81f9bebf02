"""The backfill's staging contract, run against both adapters: a SQLite file and a table of
the job's own on Azurite. Items are upserted by (table, bucket, key), a range of buckets reads
back in order, a stream reads the same, and the staging knows which job it belongs to."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.sqlite_staging import SqliteStaging
from shared.adapters.table_staging import TableStaging
from shared.backfill.staging import BUCKETS, Item, StagingStore, bucket_of, range_width, ranges

StagingFactory = Callable[[], StagingStore]


@pytest.fixture(params=["sqlite", pytest.param("table", marks=pytest.mark.azurite)])
def make_staging(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StagingFactory]:
    made: list[StagingStore] = []
    name = "t" + uuid.uuid4().hex[:12] + "stg"
    service = None
    if request.param == "table":
        service = TableServiceClient.from_connection_string(request.getfixturevalue("azurite"))

    def make() -> StagingStore:
        staging: StagingStore
        if service is None:
            staging = SqliteStaging(tmp_path / "staging.sqlite3")
        else:
            staging = TableStaging(service, name)
        made.append(staging)
        return staging

    yield make
    for staging in made:
        staging.close()
    if service is not None:
        service.close()


@pytest.fixture
def staging(make_staging: StagingFactory) -> StagingStore:
    return make_staging()


def test_new_staging_has_no_owner_until_claimed(make_staging: StagingFactory) -> None:
    staging = make_staging()
    assert staging.owner() is None
    staging.claim("bf1")
    assert staging.owner() == "bf1"
    assert make_staging().owner() == "bf1"  # another runner (process) sees it


def test_items_read_back_by_bucket_range_in_order(staging: StagingStore) -> None:
    items = [Item(5, "b", {"n": 1}), Item(5, "a", {"n": 2}), Item(9, "c", {"n": 3}), Item(4095, "z", {})]
    staging.put("persons", items)
    staging.put("records", [Item(5, "a", {"other": True})])
    assert staging.scan("persons", 5, 6) == [Item(5, "a", {"n": 2}), Item(5, "b", {"n": 1})]
    assert [i.key for i in staging.scan("persons", 0, BUCKETS)] == ["a", "b", "c", "z"]
    assert staging.scan("persons", 6, 9) == []
    assert list(staging.stream("persons", 0, BUCKETS)) == staging.scan("persons", 0, BUCKETS)
    assert staging.scan("records", 0, BUCKETS) == [Item(5, "a", {"other": True})]


def test_an_item_written_twice_is_there_once_with_its_last_value(staging: StagingStore) -> None:
    staging.put("pairs", [Item(1, "7", {"v": 1})])
    staging.put("pairs", [Item(1, "7", {"v": 2}), Item(1, "8", {"v": 3})])
    assert staging.scan("pairs", 0, BUCKETS) == [Item(1, "7", {"v": 2}), Item(1, "8", {"v": 3})]


def test_keys_and_values_round_trip_whatever_they_hold(staging: StagingStore) -> None:
    odd = "contact:AB/cd#?\\%~ü 😀"
    value = {"text": "Ünïcødé " * 9_000 + "😀", "n": 12, "f": 1.5, "b": False, "none": None, "list": [1, "x"]}
    staging.put("records", [Item(bucket_of(odd), odd, value)])
    [item] = staging.scan("records", 0, BUCKETS)
    assert item == Item(bucket_of(odd), odd, value)


def test_many_items_in_many_partitions(staging: StagingStore) -> None:
    items = [Item(bucket_of(f"k{i}"), f"k{i}", {"i": i}) for i in range(450)]
    staging.put("emails", items)
    width = range_width(450, 100)
    seen = [item for first, last in ranges(width) for item in staging.scan("emails", first, last)]
    assert sorted(i.value["i"] for i in seen) == list(range(450))


def test_a_new_claim_or_a_drop_forgets_what_was_staged(make_staging: StagingFactory) -> None:
    staging = make_staging()
    staging.claim("bf1")
    staging.put("persons", [Item(1, "1", {})])
    staging.drop()
    again = make_staging()
    assert again.owner() is None
    assert again.scan("persons", 0, BUCKETS) == []


def test_bucket_ranges_cover_every_bucket_once() -> None:
    for width in (1, 7, 100, BUCKETS, BUCKETS * 2):
        covered = [b for first, last in ranges(width) for b in range(first, last)]
        assert covered == list(range(BUCKETS))
    assert range_width(0) == BUCKETS
    assert range_width(1_000_000, 5_000) == 20
