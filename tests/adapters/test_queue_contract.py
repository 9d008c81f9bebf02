"""The LocalQueue contract: the Service Bus semantics the worker and the local host rely on.

Runs against every LocalQueue adapter (today the SQLite one; ``local_queue`` is parametrized so
another adapter joins by adding a param). The clock is fake: lock expiry, scheduling and the
duplicate-detection window are tested by moving it, never by sleeping.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.sqlite_queue import SqliteQueue
from shared.errors import ConflictError, ServiceUnavailableError
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import LocalQueue, RawMessage
from tests.adapters.conftest import START, FakeClock

MAX_DELIVERIES = 3
WINDOW = 60.0


def notice(record: str, *, version: str = "1", email: str | None = None) -> Notice:
    return Notice(
        source=Source.DYNAMICS,
        entity=Entity.LEAD,
        record_id=record,
        kind=Kind.UPDATED,
        version=version,
        occurred_at=datetime(2030, 1, 1, tzinfo=UTC),
        captured_at=datetime(2030, 1, 1, 0, 0, 5, tzinfo=UTC),
        email=email,
    )


@pytest.fixture(params=["sqlite"])
def local_queue(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[LocalQueue]:
    q = SqliteQueue(
        tmp_path / "queue.sqlite3",
        max_delivery_count=MAX_DELIVERIES,
        duplicate_window_seconds=WINDOW,
        clock=clock,
    )
    yield q
    q.close()


def records(received: list) -> list[str]:  # type: ignore[type-arg]
    return [r.notice.record_id for r in received]


# --- send, receive, complete --------------------------------------------------------------------


def test_receive_is_fifo_and_carries_the_notice(local_queue: LocalQueue) -> None:
    sent = [notice("a", email="x@example.com"), notice("b"), notice("c")]
    local_queue.send(sent)

    received = local_queue.receive(10)

    assert [r.notice for r in received] == sent
    assert [r.message_id for r in received] == [n.dedup_id for n in sent]
    assert all(r.delivery_count == 1 for r in received)
    assert all(r.enqueued_at == datetime.fromtimestamp(START, tz=UTC) for r in received)
    assert len({r.lock_token for r in received}) == 3


def test_receive_takes_at_most_max_count(local_queue: LocalQueue) -> None:
    local_queue.send([notice(f"r{i}") for i in range(5)])
    assert records(local_queue.receive(2)) == ["r0", "r1"]
    assert records(local_queue.receive(10)) == ["r2", "r3", "r4"]
    assert local_queue.receive(10) == []


def test_a_locked_message_is_invisible_but_active(local_queue: LocalQueue) -> None:
    local_queue.send([notice("a")])
    assert len(local_queue.receive(1)) == 1
    assert local_queue.receive(1) == []
    assert local_queue.active_count() == 1


def test_complete_removes_the_message_once(local_queue: LocalQueue) -> None:
    local_queue.send([notice("a")])
    [got] = local_queue.receive(1)
    local_queue.complete(got.lock_token)
    assert local_queue.active_count() == 0
    with pytest.raises(ConflictError):
        local_queue.complete(got.lock_token)


def test_complete_all_settles_a_batch_and_names_the_locks_lost(
    local_queue: LocalQueue, clock: FakeClock
) -> None:
    local_queue.send([notice(f"r{i}") for i in range(5)])
    batch = local_queue.receive(5, lock_seconds=10)
    local_queue.complete(batch[0].lock_token)  # settled already
    clock.advance(11)  # every lock expired: the messages are visible again
    again = local_queue.receive(4, lock_seconds=60)

    lost = local_queue.complete_all([m.lock_token for m in batch[1:3]] + [m.lock_token for m in again[:2]])

    assert lost == [m.lock_token for m in batch[1:3]]
    assert local_queue.active_count() == 2
    assert local_queue.complete_all([]) == []


def test_messages_survive_a_new_queue_object(tmp_path: Path, clock: FakeClock) -> None:
    first = SqliteQueue(tmp_path / "q.sqlite3", clock=clock)
    first.send([notice("a")])
    first.close()
    second = SqliteQueue(tmp_path / "q.sqlite3", clock=clock)
    assert records(second.receive(1)) == ["a"]
    second.close()


def test_queues_in_one_file_are_separate(tmp_path: Path, clock: FakeClock) -> None:
    one = SqliteQueue(tmp_path / "q.sqlite3", queue_name="one", clock=clock)
    two = SqliteQueue(tmp_path / "q.sqlite3", queue_name="two", clock=clock)
    one.send([notice("a")])
    assert two.receive(5) == []
    assert records(one.receive(5)) == ["a"]


# --- lock expiry, abandon, dead-lettering -------------------------------------------------------


def test_expired_lock_makes_the_message_visible_and_counts_a_delivery(
    local_queue: LocalQueue, clock: FakeClock
) -> None:
    local_queue.send([notice("a")])
    [first] = local_queue.receive(1, lock_seconds=30)
    clock.advance(29)
    assert local_queue.receive(1) == []
    clock.advance(2)

    [second] = local_queue.receive(1, lock_seconds=30)

    assert second.delivery_count == 2
    assert second.lock_token != first.lock_token
    with pytest.raises(ConflictError):
        local_queue.complete(first.lock_token)  # the old lock is lost
    local_queue.complete(second.lock_token)
    assert local_queue.active_count() == 0


def test_abandon_makes_it_visible_at_once_with_one_more_delivery(local_queue: LocalQueue) -> None:
    local_queue.send([notice("a"), notice("b")])
    [a] = local_queue.receive(1)
    local_queue.abandon(a.lock_token)

    again = local_queue.receive(2)

    assert records(again) == ["a", "b"]  # an abandoned message keeps its place
    assert [r.delivery_count for r in again] == [2, 1]


def test_abandoned_max_times_it_is_dead_lettered(local_queue: LocalQueue) -> None:
    local_queue.send([notice("poison")])
    for delivery in range(1, MAX_DELIVERIES + 1):
        [got] = local_queue.receive(1)
        assert got.delivery_count == delivery
        local_queue.abandon(got.lock_token)

    assert local_queue.receive(1) == []
    assert local_queue.active_count() == 0
    [dead] = local_queue.dead_letters()
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert dead.message_id == notice("poison").dedup_id
    assert Notice.from_json(dead.body) == notice("poison")


def test_last_lock_expiring_dead_letters_it(local_queue: LocalQueue, clock: FakeClock) -> None:
    local_queue.send([notice("slow")])
    for _ in range(MAX_DELIVERIES):
        assert len(local_queue.receive(1, lock_seconds=10)) == 1
        clock.advance(11)
    assert local_queue.active_count() == 0
    assert [d.reason for d in local_queue.dead_letters()] == ["MaxDeliveryCountExceeded"]
    assert local_queue.receive(1) == []


def test_explicit_dead_letter_keeps_reason_and_description(local_queue: LocalQueue, clock: FakeClock) -> None:
    local_queue.send([notice("bad")])
    [got] = local_queue.receive(1)
    local_queue.dead_letter(got.lock_token, "ValidationFailed", "lastname is required")

    [dead] = local_queue.dead_letters()
    assert (dead.reason, dead.description) == ("ValidationFailed", "lastname is required")
    assert dead.dead_lettered_at == datetime.fromtimestamp(clock.now, tz=UTC)
    assert local_queue.active_count() == 0
    with pytest.raises(ConflictError):
        local_queue.abandon(got.lock_token)


def test_dead_letters_can_be_listed_and_removed(tmp_path: Path, clock: FakeClock) -> None:
    q = SqliteQueue(tmp_path / "q.sqlite3", max_delivery_count=1, clock=clock)
    q.send([notice("a"), notice("b")])
    for got in q.receive(2):
        q.abandon(got.lock_token)
    assert len(q.peek_dead_letters()) == 2
    assert len(q.peek_dead_letters(max_count=1)) == 1

    removed = q.delete_dead_letters([notice("b").dedup_id, "unknown"])

    assert removed == 1
    assert q.receive(5) == []
    assert [d.message_id for d in q.dead_letters()] == [notice("a").dedup_id]


def test_compaction_gives_back_settled_room_and_keeps_unsettled_messages(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "q.sqlite3"
    q = SqliteQueue(path, max_delivery_count=1, duplicate_window_seconds=WINDOW, clock=clock)
    q.send_raw([RawMessage(f"settled-{i}", "x" * 4000) for i in range(1000)])
    for batch in iter(lambda: q.receive(200), []):
        assert q.complete_all([m.lock_token for m in batch]) == []
    q.send([notice("dead"), notice("locked"), notice("waiting")])
    dead, locked = q.receive(2, lock_seconds=600)
    q.dead_letter(dead.lock_token, "ValidationFailed")
    q.schedule([notice("scheduled")], datetime.fromtimestamp(clock.now + 300, tz=UTC))
    clock.advance(WINDOW + 1)  # the settled messages' ids are past the duplicate window
    q.send([notice("fresh")])
    before = _file_bytes(path)

    q.compact()

    assert _file_bytes(path) < before / 10
    assert [d.message_id for d in q.dead_letters()] == [notice("dead").dedup_id]
    q.complete(locked.lock_token)  # its lock survived
    assert records(q.receive(5)) == ["waiting", "fresh"]
    clock.advance(300)
    assert records(q.receive(5)) == ["scheduled"]
    with sqlite3.connect(path) as db:
        remembered = db.execute("SELECT message_id FROM queue_dedup").fetchall()
    assert [row[0] for row in remembered] == [notice("fresh").dedup_id]
    q.close()


def test_compaction_switches_a_file_made_before_auto_vacuum(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "old.sqlite3"
    q = SqliteQueue(path, clock=clock)
    q.active_count()
    with sqlite3.connect(path) as db:  # as an earlier release made it
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
    q.send_raw([RawMessage(f"m{i}", "x" * 4000) for i in range(500)])
    assert q.complete_all([m.lock_token for m in q.receive(500)]) == []
    q.send([notice("kept")])
    before = _file_bytes(path)

    q.compact()

    assert _file_bytes(path) < before / 10
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL from now on
    assert records(q.receive(5)) == ["kept"]
    q.close()


def _file_bytes(path: Path) -> int:
    """The database and its write-ahead log, as the file system holds them."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# --- scheduling ---------------------------------------------------------------------------------


def test_scheduled_message_is_invisible_until_its_time(local_queue: LocalQueue, clock: FakeClock) -> None:
    at = datetime.fromtimestamp(clock.now + 120, tz=UTC)
    local_queue.schedule([notice("later")], at)
    local_queue.send([notice("now")])

    [now] = local_queue.receive(10)
    assert now.notice.record_id == "now"
    assert local_queue.active_count() == 2
    local_queue.complete(now.lock_token)
    clock.advance(119)
    assert local_queue.receive(10) == []
    clock.advance(1)
    [later] = local_queue.receive(10)
    assert later.notice.record_id == "later"
    assert later.enqueued_at == at


def test_naive_schedule_time_is_utc(local_queue: LocalQueue, clock: FakeClock) -> None:
    at = datetime.fromtimestamp(clock.now + 60, tz=UTC).replace(tzinfo=None)
    local_queue.schedule([notice("later")], at)
    clock.advance(59)
    assert local_queue.receive(1) == []
    clock.advance(1)
    assert records(local_queue.receive(1)) == ["later"]


# --- duplicate detection ------------------------------------------------------------------------


def test_duplicate_inside_the_window_is_accepted_and_dropped(
    local_queue: LocalQueue, clock: FakeClock
) -> None:
    local_queue.send([notice("a"), notice("a")])
    clock.advance(WINDOW - 1)
    local_queue.send([notice("a")])
    local_queue.schedule([notice("a")], datetime.fromtimestamp(clock.now, tz=UTC))
    assert local_queue.active_count() == 1


def test_duplicate_after_the_window_is_queued_again(local_queue: LocalQueue, clock: FakeClock) -> None:
    local_queue.send([notice("a")])
    [got] = local_queue.receive(1)
    local_queue.complete(got.lock_token)
    clock.advance(WINDOW + 1)
    local_queue.send([notice("a")])
    assert records(local_queue.receive(1)) == ["a"]


def test_a_retry_of_a_notice_is_not_a_duplicate(local_queue: LocalQueue) -> None:
    first = notice("a")
    local_queue.send([first, first.retry(1)])
    assert [r.notice.attempt for r in local_queue.receive(5)] == [0, 1]


# --- concurrency, durability, failures ----------------------------------------------------------


def test_two_threads_never_receive_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    SqliteQueue(path).send([notice(f"r{i}") for i in range(200)])
    seen: list[list[str]] = [[], []]

    def drain(index: int) -> None:
        q = SqliteQueue(path)
        while batch := q.receive(3):
            for got in batch:
                seen[index].append(got.notice.record_id)
                q.complete(got.lock_token)
        q.close()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(seen[0] + seen[1]) == sorted(f"r{i}" for i in range(200))
    assert not set(seen[0]) & set(seen[1])


def _drain_in_process(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    q = SqliteQueue(Path(path))
    got: list[str] = []
    while batch := q.receive(2):
        for item in batch:
            got.append(item.notice.record_id)
            q.complete(item.lock_token)
    out.put(got)


def test_two_processes_never_receive_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    SqliteQueue(path).send([notice(f"r{i}") for i in range(100)])
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [context.Process(target=_drain_in_process, args=(str(path), out)) for _ in range(2)]
    for process in processes:
        process.start()
    results = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    assert sorted(results[0] + results[1]) == sorted(f"r{i}" for i in range(100))
    assert not set(results[0]) & set(results[1])


def test_a_database_locked_too_long_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    q = SqliteQueue(path, busy_timeout=0.05)
    q.send([notice("a")])
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ServiceUnavailableError) as caught:
            q.send([notice("b")])
        assert caught.value.service == "queue"
        assert caught.value.code == "SQLITE_BUSY"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    q.send([notice("b")])
    assert q.active_count() == 2


def test_a_body_is_delivered_as_it_was_sent_readable_or_not(local_queue: LocalQueue) -> None:
    """As on Service Bus: the queue carries bodies, the worker judges them (and parks what it
    cannot read), so the embedded queue and Azure behave alike."""
    local_queue.send_raw([RawMessage("m-1", '{"source": "marketo"}'), RawMessage("m-2", "not json")])
    got = local_queue.receive(5)
    assert [(r.message_id, r.body) for r in got] == [("m-1", '{"source": "marketo"}'), ("m-2", "not json")]
    assert local_queue.dead_letters() == []


def test_raw_messages_are_deduplicated_by_their_id(local_queue: LocalQueue) -> None:
    local_queue.send_raw([RawMessage("m-1", "x"), RawMessage("m-1", "y")])
    local_queue.send([notice("a")])
    local_queue.send_raw([RawMessage(notice("a").dedup_id, "z")])
    assert local_queue.active_count() == 2


def test_wait_for_messages(tmp_path: Path, clock: FakeClock) -> None:
    q = SqliteQueue(tmp_path / "q.sqlite3", clock=clock)
    assert q.wait_for_messages(0) is False
    q.schedule([notice("a")], datetime.fromtimestamp(clock.now, tz=UTC) + timedelta(seconds=5))
    assert q.wait_for_messages(0) is False
    clock.advance(5)
    assert q.wait_for_messages(0.5) is True
