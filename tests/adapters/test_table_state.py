"""What only the Table Storage adapter has: its key layout, request economy, limits and errors.

The behaviour every store shares is in test_state_contract.py; these tests look at the tables
themselves (through azure-data-tables, as an operator would) and count HTTP requests.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableServiceClient

from shared.adapters._table_keys import dynamics_partition, escape_key
from shared.adapters._tables_errors import error_code, map_tables_error
from shared.adapters.table_state import TableStateStore
from shared.errors import (
    AccessDeniedError,
    AuthExpiredError,
    ConfigurationError,
    ConflictError,
    MdsyncError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceUnavailableError,
    TransientError,
)
from shared.notices import FieldValue
from shared.ports import Link, LogEntry, Shadow
from tests.adapters.conftest import FakeClock, azurite_connection_string, unique_prefix

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


class RequestCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request: Any) -> None:
        self.count += 1


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
def table_store(azurite: str, counter: RequestCounter) -> Any:
    store = TableStateStore(
        connection_string=azurite, table_prefix=unique_prefix(), retry_total=0, raw_request_hook=counter
    )
    yield store
    store.close()


def claim(marketo_id: int, record: str) -> dict[str, str]:
    """A lead's claim (D row) naming ``marketo_id``, as the store writes it."""
    return {
        "PartitionKey": dynamics_partition("lead", record),
        "RowKey": escape_key(record),
        "MarketoId": str(marketo_id),
        "Entity": "lead",
        "DynamicsId": record,
    }


def raw_links(azurite: str, store: TableStateStore) -> Any:
    service = TableServiceClient.from_connection_string(azurite)
    return service.get_table_client(store.table_prefix + "links")


pytestmark = pytest.mark.azurite


# --- layout and the two link indexes ------------------------------------------------------------


def test_tables_carry_the_prefix(azurite: str, table_store: TableStateStore) -> None:
    table_store.put_link(Link(1, "lead", GUID))
    table_store.put_shadows([Shadow(1, {"a": 1})])
    names = {t.name for t in TableServiceClient.from_connection_string(azurite).list_tables()}
    assert {table_store.table_prefix + "links", table_store.table_prefix + "shadows"} <= names


def test_a_link_is_stored_by_person_and_by_record(azurite: str, table_store: TableStateStore) -> None:
    table_store.put_link(Link(1234, "lead", GUID.upper()))
    rows = {(r["PartitionKey"], r["RowKey"]): r for r in raw_links(azurite, table_store).list_entities()}
    assert set(rows) == {("m000000001", "000000001234"), (dynamics_partition("lead", GUID), GUID)}
    assert rows[(dynamics_partition("lead", GUID), GUID)]["MarketoId"] == "1234"


def test_a_claim_left_by_a_crash_is_ignored_then_taken_over(
    azurite: str, table_store: TableStateStore
) -> None:
    table_store.get_links_by_marketo([1])  # creates the table
    # A process claimed the record for person 5 and died before writing person 5's row.
    raw_links(azurite, table_store).create_entity(claim(5, GUID))
    assert table_store.get_links_by_dynamics("lead", [GUID]) == {}

    link = table_store.put_link(Link(6, "lead", GUID))

    assert table_store.get_links_by_dynamics("lead", [GUID]) == {GUID: link}


def test_a_claim_its_person_moved_away_from_is_taken_over(azurite: str, table_store: TableStateStore) -> None:
    table_store.put_link(Link(5, "lead", GUID))
    other = "11111111-2222-3333-4444-555555555555"
    moved = table_store.put_link(Link(5, "lead", other))
    # Simulate a crash before the old claim was dropped: put it back.
    raw_links(azurite, table_store).upsert_entity(claim(5, GUID))
    # Person 5's row names another record: the claim counts for nothing, hinted or not.
    for hints in (None, {GUID: 5}, {GUID: 6}):
        assert table_store.get_links_by_dynamics("lead", [GUID], hints=hints) == {}
    assert table_store.get_links_by_dynamics("lead", [other]) == {other: moved}

    assert table_store.put_link(Link(9, "lead", GUID)).marketo_id == 9


# --- request economy ----------------------------------------------------------------------------


def test_batch_reads_of_nearby_persons_take_a_few_queries(
    table_store: TableStateStore, counter: RequestCounter
) -> None:
    ids = list(range(1000, 1300))  # 300 persons, one partition
    table_store.put_shadows([Shadow(i, {"n": i}) for i in ids[::2]])
    table_store.get_links_by_marketo([1])  # creates the links table
    counter.count = 0

    shadows = table_store.get_shadows(ids)
    shadow_requests = counter.count
    counter.count = 0
    links = table_store.get_links_by_marketo(ids)

    assert len(shadows) == 150
    assert links == {}
    assert shadow_requests <= 22  # ceil(300 / 14), instead of 300 point reads
    assert counter.count <= 22


def seed_links(azurite: str, store: TableStateStore, marketo_ids: range) -> dict[int, str]:
    """Links written straight into the table (both rows, 100 to a transaction): quicker than
    ``put_link`` for the hundreds a request count needs. Returns person -> record."""
    store.get_links_by_marketo([1])  # creates the table
    records = {m: f"00000000-0000-4000-8000-{m:012d}" for m in marketo_ids}
    groups: dict[str, list[dict[str, Any]]] = {}
    for marketo_id, record in records.items():
        person = {"Entity": "lead", "DynamicsId": record, "DynamicsKey": record}
        m_row = {"PartitionKey": f"m{marketo_id // 1000:09d}", "RowKey": f"{marketo_id:012d}", **person}
        for row in (m_row, claim(marketo_id, record)):
            groups.setdefault(row["PartitionKey"], []).append(row)
    table = raw_links(azurite, store)
    for rows in groups.values():
        for start in range(0, len(rows), 100):
            table.submit_transaction([("create", row) for row in rows[start : start + 100]])
    return records


def test_a_batch_of_consecutive_persons_is_one_range_read_per_partition(
    azurite: str, table_store: TableStateStore, counter: RequestCounter
) -> None:
    records = seed_links(azurite, table_store, range(2500, 3400))  # 900 persons, two partitions
    table_store.put_shadows([Shadow(i, {"n": i}) for i in range(2500, 3400, 3)])
    counter.count = 0

    links = table_store.get_links_by_marketo(records)
    assert counter.count == 2
    assert len(links) == 900

    counter.count = 0
    assert len(table_store.get_shadows(records)) == 300
    assert counter.count == 2

    counter.count = 0
    hinted = table_store.get_links_by_dynamics(
        "lead", records.values(), hints={r: m for m, r in records.items()}
    )
    assert counter.count == 2  # the persons' rows only: no claim is read
    assert {r: link.marketo_id for r, link in hinted.items()} == {r: m for m, r in records.items()}

    counter.count = 0
    assert table_store.get_links_by_dynamics("lead", records.values()) == hinted
    assert counter.count <= 256 + 2  # a query per claim partition, then the persons' rows


def test_a_wrong_hint_falls_back_to_the_claims(
    azurite: str, table_store: TableStateStore, counter: RequestCounter
) -> None:
    records = seed_links(azurite, table_store, range(5000, 5020))
    asked = list(records.values())
    # Each hint names the next person: none of their rows names the record.
    hints = {records[m]: m + 1 for m in records}
    found = table_store.get_links_by_dynamics("lead", asked, hints=hints)
    assert {r: link.marketo_id for r, link in found.items()} == {r: m for m, r in records.items()}


def test_in_the_crash_gap_a_hint_finds_the_person_whose_row_names_the_record(
    azurite: str, table_store: TableStateStore
) -> None:
    rival = table_store.put_link(Link(7, "lead", GUID))
    # Person 6's process wrote its row and died before confirming its claim, which 7 then took.
    raw_links(azurite, table_store).upsert_entity(
        {"PartitionKey": "m000000000", "RowKey": "000000000006", "Entity": "lead", "DynamicsId": GUID}
        | {"DynamicsKey": GUID}
    )
    assert table_store.get_links_by_dynamics("lead", [GUID]) == {GUID: rival}
    assert table_store.get_links_by_dynamics("lead", [GUID], hints={GUID: 7}) == {GUID: rival}
    # The documented gap: the hinted person's own row names the record, as by-person reads say.
    crashed = table_store.get_links_by_dynamics("lead", [GUID], hints={GUID: 6})[GUID]
    assert crashed.marketo_id == 6
    assert table_store.get_links_by_marketo([6]) == {6: crashed}


def test_first_links_in_bulk_take_three_transactions_per_partition(
    table_store: TableStateStore, counter: RequestCounter
) -> None:
    table_store.get_links_by_marketo([1])  # creates the table
    records = [f"00000000-0000-4000-8000-{m:012d}" for m in range(1000)]
    claim_partitions = {dynamics_partition("lead", r) for r in records}
    counter.count = 0
    before = table_store.requests.snapshot()

    assert table_store.put_links([Link(m, "lead", r) for m, r in enumerate(records)]) == {}

    after = table_store.requests.snapshot()
    sent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    # One range read of the persons' rows; claims created, persons' rows created (10 of 100),
    # claims confirmed: a transaction per partition each, instead of 3,000 requests and more.
    assert sent == {"GET links": 1, "POST $batch": 2 * len(claim_partitions) + 10}
    assert len(table_store.get_links_by_dynamics("lead", records)) == 1000


def test_a_bulk_of_first_links_takes_over_a_claim_left_by_a_crash(
    azurite: str, table_store: TableStateStore
) -> None:
    table_store.get_links_by_marketo([1])  # creates the table
    raw_links(azurite, table_store).create_entity(claim(5, GUID))  # person 5's process died

    assert table_store.put_links([Link(6, "lead", GUID), Link(7, "lead", "guid-7")]) == {}

    found = table_store.get_links_by_dynamics("lead", [GUID, "guid-7"])
    assert {r: link.marketo_id for r, link in found.items()} == {GUID: 6, "guid-7": 7}


def test_a_claim_a_rival_takes_before_the_bulk_confirms_it_refuses_the_link(
    azurite: str, counter: RequestCounter
) -> None:
    prefix = unique_prefix()
    rival = TableStateStore(connection_string=azurite, table_prefix=prefix, retry_total=0)
    rival_link: list[Link] = []

    def rival_takes_the_claim(request: Any) -> None:
        # Before the second transaction (our person's row): our claim is created and not yet
        # confirmed, and a rival that finds it so takes it over (put_link's rule for claims
        # left by a crash).
        if "$batch" in request.http_request.url:
            counter(request)
            if counter.count == 2:
                rival_link.append(rival.put_link(Link(9, "lead", GUID)))

    store = TableStateStore(
        connection_string=azurite, table_prefix=prefix, retry_total=0, raw_request_hook=rival_takes_the_claim
    )
    try:
        store.get_links_by_marketo([1])  # creates the table
        refused = store.put_links([Link(6, "lead", GUID)])
        assert set(refused) == {6}
        assert isinstance(refused[6], ConflictError)
        assert store.get_links_by_marketo([6, 9]) == {9: rival_link[0]}
        assert store.get_links_by_dynamics("lead", [GUID]) == {GUID: rival_link[0]}
        assert counter.count == 3  # claim, person's row, the confirmation that failed
    finally:
        store.close()
        rival.close()


def test_shadows_of_one_partition_are_written_in_transactions(
    table_store: TableStateStore, counter: RequestCounter
) -> None:
    table_store.get_shadows([1])  # creates the table
    counter.count = 0
    table_store.put_shadows([Shadow(i, {"n": i}) for i in range(2000, 2250)])
    assert counter.count == 3  # 100 + 100 + 50 operations
    assert len(table_store.get_shadows(range(2000, 2250))) == 250


def raw_shadow(azurite: str, store: TableStateStore, marketo_id: int) -> Any:
    table = TableServiceClient.from_connection_string(azurite).get_table_client(
        store.table_prefix + "shadows"
    )
    return table.get_entity(f"s{marketo_id // 1000:09d}", f"{marketo_id:012d}")


def test_a_one_chunk_shadow_is_merged_and_a_larger_one_replaced(
    azurite: str, table_store: TableStateStore
) -> None:
    """Azurite removes and re-inserts an entity it REPLACEs (the cost of a removal grows with
    the table); a MERGE of every property leaves the same shadow. What a MERGE keeps is only
    what ValuesChunks says not to read."""
    big: dict[str, FieldValue] = {"notes": "é" * 40_000}  # three chunks
    table_store.put_shadows([Shadow(7, big)])
    table_store.put_shadows([Shadow(7, {"a": 1}, etag=table_store.get_shadows([7])[7].etag)])
    shrunk = raw_shadow(azurite, table_store, 7)
    assert (shrunk["ValuesChunks"], "Values2" in shrunk) == (1, True)  # merged: the old chunks stay
    assert table_store.get_shadows([7])[7].values == {"a": 1}

    table_store.put_shadows([Shadow(7, big, etag=table_store.get_shadows([7])[7].etag)])
    table_store.put_shadows([Shadow(7, {"notes": "ü" * 20_000}, etag=table_store.get_shadows([7])[7].etag)])
    replaced = raw_shadow(azurite, table_store, 7)
    assert (replaced["ValuesChunks"], "Values2" in replaced) == (2, False)  # two chunks: replaced
    assert table_store.get_shadows([7])[7].values == {"notes": "ü" * 20_000}


def test_a_worker_batch_of_log_entries_is_a_few_transactions(
    azurite: str, table_store: TableStateStore, counter: RequestCounter
) -> None:
    table_store.append_log([LogEntry(1, None, "lead", "warm-up", "creates the day's table")])
    counter.count = 0
    # A 900-notice batch: every entry is about a person and a Dynamics record (two copies).
    entries = [
        LogEntry(5000 + 7919 * i, f"{i:08x}-0000-4000-8000-000000000000", "lead", "to_dynamics", f"#{i}")
        for i in range(900)
    ]
    table_store.append_log(entries)
    # 1,800 entities in 4 partitions, 100 per transaction: 18 transactions and a partial one
    # per partition at most (the layout before wrote one transaction per person and per record).
    assert counter.count <= 22
    (day,) = _log_tables(azurite, table_store)
    assert sum(1 for _ in day.list_entities()) == 1 + 1800
    counter.count = 0
    assert [e.detail for e in table_store.read_log(marketo_id=5000 + 7919 * 7)] == ["#7"]
    assert counter.count == 2  # the list of day tables, one range query


def test_expired_days_are_deleted_as_whole_tables(azurite: str) -> None:
    clock = FakeClock()
    store = TableStateStore(
        connection_string=azurite, table_prefix=unique_prefix(), clock=clock, retry_total=0
    )
    service = TableServiceClient.from_connection_string(azurite)
    legacy = service.create_table(store.table_prefix + "log")  # an earlier release's sync log
    legacy.create_entity({"PartitionKey": "m-1", "RowKey": "0", "Detail0": "old layout"})
    try:
        for _ in range(3):
            store.append_log([LogEntry(1, None, "lead", "failed", "a day's entry")])
            clock.advance(86_400)
        assert len(_log_tables(azurite, store)) == 4
        assert len(store.read_log(marketo_id=1)) == 3  # the old layout is not read

        store.expire_log(datetime.fromtimestamp(clock.now, tz=UTC) - timedelta(days=1))

        (left,) = _log_tables(azurite, store)
        assert left.table_name != store.table_prefix + "log"  # gone with the first expired day
        assert len(store.read_log(marketo_id=1)) == 1
    finally:
        store.close()


def _log_tables(azurite: str, store: TableStateStore) -> list[Any]:
    service = TableServiceClient.from_connection_string(azurite)
    names = [t.name for t in service.list_tables() if t.name.startswith(store.table_prefix + "log")]
    return [service.get_table_client(name) for name in names]


# --- limits -------------------------------------------------------------------------------------


def test_a_value_too_large_for_an_entity_is_refused_not_truncated(table_store: TableStateStore) -> None:
    huge: dict[str, FieldValue] = {"notes": "x" * 500_000}
    with pytest.raises(PermanentError) as caught:
        table_store.put_shadows([Shadow(1, huge)])
    assert caught.value.code == "EntityTooLarge"
    assert table_store.get_shadows([1]) == {}


def test_negative_marketo_ids_are_refused(table_store: TableStateStore) -> None:
    with pytest.raises(ValueError, match="negative"):
        table_store.put_link(Link(-1, "lead", GUID))


# --- configuration and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"connection_string": "UseDevelopmentStorage=true", "table_prefix": "no-dashes"},
        {"connection_string": "UseDevelopmentStorage=true", "table_prefix": "9digitfirst"},
    ],
)
def test_invalid_configuration_is_refused_up_front(arguments: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        TableStateStore(**arguments)


def test_unreachable_service_is_transient() -> None:
    store = TableStateStore(connection_string=azurite_connection_string(9), retry_total=0)
    with pytest.raises(ServiceUnavailableError):
        store.get_checkpoint("x")


def test_wrong_account_key_is_not_transient(azurite: str) -> None:
    port = azurite.split("127.0.0.1:")[1].split("/", maxsplit=1)[0]
    wrong = base64.b64encode(b"not the key" * 6).decode()
    store = TableStateStore(connection_string=azurite_connection_string(int(port), wrong), retry_total=0)
    with pytest.raises(MdsyncError) as caught:
        store.get_checkpoint("x")
    # Azure answers 403 AuthenticationFailed (-> ConfigurationError); Azurite 403 AuthorizationFailure.
    assert isinstance(caught.value, ConfigurationError | AccessDeniedError)
    assert not isinstance(caught.value, TransientError)


def _http_error(
    status: int, code: str | None = None, cls: type[HttpResponseError] = HttpResponseError
) -> Any:
    error = cls(message=f"service said {status}\nRequestId:abc")
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ServiceRequestError("connection refused"), ServiceUnavailableError),
        (ServiceResponseError("connection reset"), ServiceUnavailableError),
        (_http_error(429), RateLimitedError),
        (_http_error(503, "ServerBusy"), RateLimitedError),
        (_http_error(500, "InternalError"), ServiceUnavailableError),
        (_http_error(408, "OperationTimedOut"), ServiceUnavailableError),
        (_http_error(401, "InvalidAuthenticationInfo", ClientAuthenticationError), AuthExpiredError),
        (_http_error(403, "AuthenticationFailed", ClientAuthenticationError), ConfigurationError),
        (_http_error(403, "AuthorizationPermissionMismatch"), AccessDeniedError),
        (_http_error(404, "TableNotFound"), NotFoundError),
        (_http_error(409, "EntityAlreadyExists"), ConflictError),
        (_http_error(412, "UpdateConditionNotSatisfied"), ConflictError),
        (_http_error(400, "PropertyValueTooLarge"), PermanentError),
    ],
)
def test_azure_errors_map_to_ours(error: Any, expected: type[MdsyncError]) -> None:
    mapped = map_tables_error(error)
    assert type(mapped) is expected
    if isinstance(error, HttpResponseError) and not isinstance(mapped, ConfigurationError):
        assert mapped.code == error.error_code  # type: ignore[attr-defined]
        assert "RequestId" not in str(mapped)


# --- transactions -------------------------------------------------------------------------------


def test_a_transaction_writes_what_the_sdk_would_and_reports_a_failed_operation(azurite: str) -> None:
    from azure.core import MatchConditions
    from azure.data.tables import TableTransactionError, UpdateMode

    from shared.adapters._table_transactions import submit_transaction

    table = TableServiceClient.from_connection_string(azurite).create_table(unique_prefix() + "tx")
    entity = {"PartitionKey": "p'1", "RowKey": "ré 1", "Text": "Ünïcødé \U0001f600", "N": 7, "F": 1.5}
    entity |= {"B": True, "When": datetime(2030, 1, 2, tzinfo=UTC)}
    etags = submit_transaction(
        table, [("create", entity), ("upsert", {"PartitionKey": "p'1", "RowKey": "2"})]
    )

    stored = table.get_entity("p'1", "ré 1")
    assert dict(stored) == entity
    assert [e["etag"] for e in etags] == [
        stored.metadata["etag"],
        table.get_entity("p'1", "2").metadata["etag"],
    ]

    stale = {
        "mode": UpdateMode.REPLACE,
        "etag": etags[1]["etag"],
        "match_condition": MatchConditions.IfNotModified,
    }
    table.upsert_entity({"PartitionKey": "p'1", "RowKey": "2", "Moved": True})
    with pytest.raises(TableTransactionError) as failed:
        submit_transaction(
            table,
            [
                ("delete", {"PartitionKey": "p'1", "RowKey": "ré 1"}),
                ("update", {"PartitionKey": "p'1", "RowKey": "2"}, stale),
            ],
        )
    assert failed.value.status_code == 412
    assert error_code(failed.value) == "UpdateConditionNotSatisfied"
    assert isinstance(map_tables_error(failed.value), ConflictError)
    assert table.get_entity("p'1", "ré 1")["Text"] == entity["Text"]  # nothing of it was written


def test_a_batch_of_tallies_is_one_query_and_one_transaction_per_hour(table_store: TableStateStore) -> None:
    from shared.adapters.table_operations import TableOperationsStore
    from shared.ports import Tally

    operations = TableOperationsStore(table_store)
    hour = datetime(2030, 1, 2, 3, tzinfo=UTC)
    names = ["processed", "synced", "marketo_calls", "dataverse_calls", "skipped"]
    operations.add_tallies([Tally(hour, "lead", "to_dynamics", "processed", 1)])  # creates the table
    for _ in range(2):
        before = table_store.requests.snapshot()
        operations.add_tallies([Tally(hour, "lead", "to_dynamics", name, 2) for name in names])
        after = table_store.requests.snapshot()
        assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)} == {
            "GET tallies": 1,
            "POST $batch": 1,
        }
    counts = {t.name: t.count for t in operations.read_tallies(hour)}
    assert counts == dict.fromkeys(names, 4) | {"processed": 5}


def test_a_lone_instance_takes_a_shared_marketo_call_in_one_request(
    table_store: TableStateStore, clock: FakeClock
) -> None:
    from shared.marketo.budget import StoredCallWindow

    budget = StoredCallWindow(table_store, "marketo", 95, clock=clock)
    rival = StoredCallWindow(table_store, "marketo", 95, clock=clock)
    assert budget.take() == 0.0  # reads the record (none yet) and creates it
    before = table_store.requests.snapshot()
    for _ in range(10):
        clock.advance(0.1)
        assert budget.take() == 0.0
    after = table_store.requests.snapshot()
    assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)} == {
        "PUT checkpoints": 10
    }

    assert rival.take() == 0.0  # another instance's call: ours now reads again, and counts it
    for _ in range(95 - 12):
        assert budget.take() == 0.0
    assert budget.take() > 0
