"""Replaying Service Bus dead letters without a Service Bus: only the SDK's receiver and sender
are faked, at their edge.

``FakeReceiver`` duck-types ``ServiceBusReceiver`` on the dead-letter sub-queue and hands out
real ``ServiceBusReceivedMessage`` objects (built from AMQP messages as the SDK builds them, with
the dead-letter properties Service Bus sets), so body decoding, ids and reasons go through the
SDK's own code. The replacements go out through ``ServiceBusQueue`` and the ``FakeSender`` of
``test_servicebus_queue``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus import exceptions as sb
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport

from shared.adapters.servicebus_dead_letters import ServiceBusDeadLetters
from shared.adapters.servicebus_queue import ServiceBusQueue
from shared.bootstrap import Container
from shared.config import Settings, load_settings
from shared.errors import ServiceUnavailableError
from shared.notices import Notice
from shared.replay import ParkedNotices, list_given_up, replay
from tests.adapters.test_servicebus_queue import FakeSender, body_of, make_notice

ENQUEUED = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def dead_letter(
    body: str, message_id: str, sequence: int, reason: str, description: str
) -> ServiceBusReceivedMessage:
    outgoing = ServiceBusMessage(body, message_id=message_id, content_type="application/json")
    amqp = PyamqpTransport.to_outgoing_amqp_message(outgoing._raw_amqp_message)
    # As Service Bus delivers them from the dead-letter sub-queue (AMQP strings arrive as bytes).
    amqp = amqp._replace(
        application_properties={
            b"DeadLetterReason": reason.encode(),
            b"DeadLetterErrorDescription": description.encode(),
        },
        message_annotations={
            b"x-opt-sequence-number": sequence,
            b"x-opt-enqueued-time": int(ENQUEUED.timestamp() * 1000),
        },
    )
    return ServiceBusReceivedMessage(amqp, receiver=object())


class FakeReceiver:
    """Duck-types ``ServiceBusReceiver`` (dead-letter sub-queue, peek-lock)."""

    def __init__(self, messages: list[ServiceBusReceivedMessage]) -> None:
        self.queue = list(messages)
        self.locked: list[ServiceBusReceivedMessage] = []
        self.completed: list[str] = []
        self.abandoned: list[str] = []

    def peek_messages(
        self, max_message_count: int = 1, *, sequence_number: int = 0, timeout: float | None = None
    ) -> list[ServiceBusReceivedMessage]:
        after = [m for m in self.queue if (m.sequence_number or 0) >= sequence_number]
        return after[:max_message_count]

    def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> list[ServiceBusReceivedMessage]:
        free = [m for m in self.queue if m not in self.locked][: max_message_count or 1]
        self.locked += free
        return free

    def complete_message(self, message: ServiceBusReceivedMessage) -> None:
        assert message in self.locked, "settled a message it did not hold"
        self.locked.remove(message)
        self.queue.remove(message)
        self.completed.append(str(message.message_id))

    def abandon_message(self, message: ServiceBusReceivedMessage) -> None:
        assert message in self.locked, "settled a message it did not hold"
        self.locked.remove(message)
        self.abandoned.append(str(message.message_id))

    def close(self) -> None:
        pass


def two_dead_letters() -> tuple[Notice, FakeReceiver]:
    notice = make_notice(1)
    receiver = FakeReceiver(
        [
            dead_letter(notice.to_json(), notice.dedup_id, 7, "MaxDeliveryCountExceeded", "10 deliveries"),
            dead_letter("not a notice", "m-garbage", 8, "MaxDeliveryCountExceeded", ""),
        ]
    )
    return notice, receiver


def test_dead_letters_are_listed_without_settling_anything() -> None:
    notice, receiver = two_dead_letters()
    store = ServiceBusDeadLetters("mdsync-notices", receiver=receiver)

    items = list_given_up([store])

    assert [(i.store, i.item_id) for i in items] == [
        ("dead-letter", notice.dedup_id),
        ("dead-letter", "m-garbage"),
    ]
    assert items[0].body == notice.to_json()
    assert items[0].reason == "MaxDeliveryCountExceeded: 10 deliveries"
    assert items[0].at == ENQUEUED
    assert receiver.locked == []
    assert receiver.completed == []
    assert receiver.abandoned == []


def test_each_dead_letter_is_completed_once_its_replacement_was_sent() -> None:
    notice, receiver = two_dead_letters()
    sender = FakeSender()

    report = replay([ServiceBusDeadLetters("q", receiver=receiver)], ServiceBusQueue("q", sender=sender))

    [sent] = sender.sent
    ids = [m.message_id for m in sent]
    assert notice.dedup_id not in ids  # an id of its own, or duplicate detection drops it
    replayed = Notice.from_json(body_of(sent[0]))
    assert (replayed.record_id, replayed.attempt, replayed.replay is not None) == (notice.record_id, 0, True)
    assert body_of(sent[1]) == b"not a notice"
    assert str(ids[1]).startswith("replay-")
    assert receiver.completed == [notice.dedup_id, "m-garbage"]
    assert len(report.replayed) == 2
    assert receiver.queue == []


def test_a_dead_letter_stays_when_the_queue_refuses_its_replacement() -> None:
    _, receiver = two_dead_letters()
    sender = FakeSender(failures=[sb.ServiceBusServerBusyError(message="busy")])

    report = replay([ServiceBusDeadLetters("q", receiver=receiver)], ServiceBusQueue("q", sender=sender))

    assert sender.sent == []
    assert receiver.completed == []
    assert sorted(receiver.abandoned) == sorted(m.item_id for m, _ in report.failed)
    assert len(receiver.queue) == 2
    assert receiver.locked == []


def test_only_the_chosen_ones_are_replayed_the_others_released() -> None:
    notice, receiver = two_dead_letters()
    sender = FakeSender()

    replay(
        [ServiceBusDeadLetters("q", receiver=receiver)],
        ServiceBusQueue("q", sender=sender),
        only={"m-garbage"},
    )

    assert receiver.completed == ["m-garbage"]
    assert receiver.abandoned == [notice.dedup_id]
    [(replacement,)] = sender.sent
    assert str(replacement.message_id).startswith("replay-")


def test_sdk_errors_are_ours() -> None:
    class Broken(FakeReceiver):
        def receive_messages(
            self, max_message_count: int | None = 1, max_wait_time: float | None = None
        ) -> list:  # type: ignore[type-arg]
            raise sb.ServiceBusConnectionError(message="link detached")

    store = ServiceBusDeadLetters("q", receiver=Broken([]))
    with pytest.raises(ServiceUnavailableError, match=r"q/\$DeadLetterQueue"):
        store.take(10)


def test_the_operator_sees_parked_notices_and_dead_letters_in_one_list(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shared.adapters.sqlite_state import SqliteStateStore
    from shared.ports import ParkedNotice

    state = SqliteStateStore(tmp_path / "state.sqlite3")
    parked = make_notice(2)
    state.park(
        [ParkedNotice(parked.dedup_id, parked.to_json(), "RateLimitedError (after 8 attempts)", ENQUEUED)]
    )
    notice, receiver = two_dead_letters()

    items = list_given_up([ParkedNotices(state), ServiceBusDeadLetters("q", receiver=receiver)])

    assert [(i.store, i.item_id) for i in items] == [
        ("parked", parked.dedup_id),
        ("dead-letter", notice.dedup_id),
        ("dead-letter", "m-garbage"),
    ]
    state.close()


def test_in_azure_mode_replay_reads_the_service_bus_dead_letters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The composition root gives `mdsync replay` the parked notices and, with the Service Bus
    queue, its dead-letter sub-queue (nothing connects until it is read)."""
    for field in Settings.model_fields.values():  # only what this test sets
        if field.alias:
            monkeypatch.delenv(field.alias, raising=False)
    monkeypatch.setenv("MDSYNC_LOCAL_SETTINGS", str(tmp_path / "no-local.settings.json"))
    monkeypatch.setenv("MDSYNC_QUEUE_BACKEND", "servicebus")
    monkeypatch.setenv("ServiceBusConnection__fullyQualifiedNamespace", "mdsync.servicebus.windows.net")
    monkeypatch.setenv("MDSYNC_STATE_BACKEND", "sqlite")
    monkeypatch.setenv("MDSYNC_SQLITE_PATH", str(tmp_path / "mdsync.sqlite3"))
    container = Container(load_settings())
    try:
        parked, dead = container.given_up
        assert isinstance(parked, ParkedNotices)
        assert isinstance(dead, ServiceBusDeadLetters)
        assert dead.queue_name == container.settings.queue_name
    finally:
        container.close()
