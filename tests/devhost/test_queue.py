"""Service Bus-triggered functions fed from the real SQLite queue."""

from __future__ import annotations

import json
import time
from pathlib import Path

import azure.functions as func

from mdsync.devhost import DevHost
from shared.adapters.sqlite_queue import MAX_DELIVERY_COUNT_EXCEEDED, SqliteQueue
from shared.notices import Notice
from tests.devhost.conftest import MAX_DELIVERIES, HostFactory, notice, wait_for
from tests.devhost.sample_app import POISON_ID, Recorder


def _host_json(tmp_path: Path, batch_size: int) -> Path:
    path = tmp_path / "host.json"
    path.write_text(
        json.dumps({"version": "2.0", "extensions": {"serviceBus": {"maxMessageBatchSize": batch_size}}})
    )
    return path


def test_messages_arrive_in_batches_and_are_completed(
    make_host: HostFactory, queue: SqliteQueue, recorder: Recorder, tmp_path: Path
) -> None:
    sent = [notice(f"p{i}") for i in range(25)]
    queue.send(sent)  # queued before the host starts, so the first receive finds a full batch
    make_host(host_json=_host_json(tmp_path, 10)).start()

    wait_for(lambda: len(recorder.delivered_ids()) == 25, what="25 deliveries")
    wait_for(lambda: queue.active_count() == 0, what="every message completed")
    sizes = [len(batch) for batch in recorder.batches]
    assert max(sizes) == 10  # maxMessageBatchSize from host.json caps a batch
    assert sum(sizes) == 25  # each message delivered once: completed after success
    assert recorder.delivered_ids() == {n.dedup_id for n in sent}
    assert queue.dead_letters() == []


def test_message_objects_carry_the_service_bus_properties(
    host: DevHost, queue: SqliteQueue, recorder: Recorder
) -> None:
    sent = notice("p1")
    queue.send([sent])
    host.wake()
    [batch] = wait_for(lambda: list(recorder.batches), what="one delivery")
    [message] = batch
    assert message.message_id == sent.dedup_id
    assert message.delivery_count == 1
    assert message.content_type == "application/json"
    assert message.lock_token
    assert message.enqueued_time_utc is not None
    assert message.locked_until is not None
    assert message.locked_until > message.enqueued_time_utc
    assert message.application_properties == {}
    assert Notice.from_json(message.get_body()) == sent


def test_a_failing_invocation_is_abandoned_until_dead_lettered(
    host: DevHost, queue: SqliteQueue, recorder: Recorder
) -> None:
    queue.send([notice("good")])
    host.wake()
    wait_for(lambda: queue.active_count() == 0, what="the good message completed")

    poison = notice(POISON_ID)
    queue.send([poison])
    host.wake()
    [dead] = wait_for(queue.dead_letters, what="the poison message dead-lettered")
    assert dead.message_id == poison.dedup_id
    assert dead.reason == MAX_DELIVERY_COUNT_EXCEEDED
    # Each failure abandoned the message: redelivered with a growing count, then dead-lettered.
    assert recorder.poison_deliveries == list(range(1, MAX_DELIVERIES + 1))
    assert queue.active_count() == 0


def test_a_failing_batch_abandons_every_message_in_it(
    make_host: HostFactory, queue: SqliteQueue, recorder: Recorder
) -> None:
    queue.send([notice("a"), notice(POISON_ID), notice("b")])
    make_host().start()
    dead = wait_for(
        lambda: len(queue.dead_letters()) == 3 and queue.dead_letters(), what="three dead letters"
    )
    # The whole batch failed together each time, as the extension does with cardinality many.
    assert {d.reason for d in dead} == {MAX_DELIVERY_COUNT_EXCEEDED}
    assert len(recorder.batches) == MAX_DELIVERIES
    assert all(len(batch) == 3 for batch in recorder.batches)


def test_functions_on_other_queues_are_not_fed(host: DevHost) -> None:
    rows = {row.name: row for row in host.describe()}
    assert rows["other_queue"].details.startswith("not fed")
    assert rows["consume"].details == "cardinality=many (<= 1000 per call)"


def test_cardinality_one_delivers_single_messages_side_by_side(queue: SqliteQueue, tmp_path: Path) -> None:
    import threading

    seen: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=60)
    app = func.FunctionApp()

    @app.service_bus_queue_trigger(arg_name="msg", connection="ServiceBusConnection", queue_name="notices")
    def single(msg: func.ServiceBusMessage) -> None:
        assert isinstance(msg, func.ServiceBusMessage)
        barrier.wait()  # two invocations must be running at once to get past this
        with lock:
            seen.append(msg.message_id)

    queue.send([notice("one"), notice("two")])
    with DevHost(
        app, queue=queue, port=0, function_keys={}, host_keys=[], settings_env={}, state_dir=tmp_path
    ):
        wait_for(lambda: queue.active_count() == 0, what="both messages completed")
    assert len(seen) == 2
    assert queue.dead_letters() == []


def test_a_held_queue_builds_a_backlog_that_release_hands_over(
    host: DevHost, queue: SqliteQueue, recorder: Recorder
) -> None:
    host.hold_queue(True)
    sent = [notice(f"held{i}") for i in range(5)]
    queue.send(sent)
    host.wake()
    time.sleep(0.5)  # several idle polls of a pump that was not held
    assert recorder.batches == []
    assert queue.active_count() == 5

    host.hold_queue(False)
    wait_for(lambda: queue.active_count() == 0, what="the backlog synced")
    assert recorder.delivered_ids() == {n.dedup_id for n in sent}
    assert [len(batch) for batch in recorder.batches] == [5]  # handed over as one backlog
