"""ServiceBusQueue without a Service Bus: only the SDK's sender is faked.

``FakeSender`` stands in for ``azure.servicebus.ServiceBusSender`` at its edge: it hands out real
``ServiceBusMessageBatch`` objects (a small ``max_size_in_bytes`` forces splitting, and the SDK
itself measures every message) and records what would have gone over AMQP. The decoder is fed
messages built by azure-functions' own converter, as the Functions host builds them.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus import exceptions as sb

from shared.adapters.messages import notice_from_message
from shared.adapters.servicebus_queue import ServiceBusQueue
from shared.errors import (
    AccessDeniedError,
    BadRequestError,
    ConfigurationError,
    MdsyncError,
    PermanentError,
    RateLimitedError,
    ServiceUnavailableError,
)
from shared.notices import Entity, FieldChange, Kind, Notice, Source

WHEN = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def make_notice(i: int, *, padding: int = 0, email: str | None = None) -> Notice:
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id=str(1000 + i),
        kind=Kind.UPDATED,
        changes={"company": FieldChange(old="Old", new="N" * padding)},
        version=f"v{i}",
        occurred_at=WHEN,
        captured_at=WHEN,
        attempt=i % 3,
        own_write=i % 2 == 0,
        email=email,
    )


class RecordingBatch(ServiceBusMessageBatch):
    """A real batch (the SDK measures and refuses messages) that remembers what it holds."""

    def __init__(self, max_size_in_bytes: int) -> None:
        super().__init__(max_size_in_bytes=max_size_in_bytes)
        self.held: list[ServiceBusMessage] = []

    def add_message(self, message: Any) -> None:
        super().add_message(message)
        self.held.append(message)


class FakeSender:
    """Duck-types ``ServiceBusSender``: batches, sends, schedules; can fail like the SDK."""

    def __init__(self, link_size: int = 262_144, failures: list[Exception] | None = None) -> None:
        self.link_size = link_size
        self.failures = failures or []
        self.sent: list[list[ServiceBusMessage]] = []
        self.scheduled: list[tuple[list[ServiceBusMessage], datetime]] = []
        self.closed = False

    def create_message_batch(self, max_size_in_bytes: int | None = None) -> RecordingBatch:
        return RecordingBatch(max_size_in_bytes or self.link_size)

    def send_messages(self, message: Any, *, timeout: float | None = None) -> None:
        if self.failures:
            raise self.failures.pop(0)
        assert isinstance(message, RecordingBatch), "sends must go through batches"
        assert len(message) > 0
        self.sent.append(message.held)

    def schedule_messages(
        self, messages: list[ServiceBusMessage], schedule_time_utc: datetime, *, timeout: float | None = None
    ) -> list[int]:
        if self.failures:
            raise self.failures.pop(0)
        self.scheduled.append((list(messages), schedule_time_utc))
        return list(range(len(messages)))

    def close(self) -> None:
        self.closed = True


def body_of(message: ServiceBusMessage) -> bytes:
    body = message.body
    return body if isinstance(body, bytes) else b"".join(body)


def as_trigger_message(message: ServiceBusMessage) -> Any:
    """What the Functions host hands the worker for this message."""
    datum = meta.Datum
    metadata = {
        "MessageId": datum(type="string", value=message.message_id),
        "DeliveryCount": datum(type="int", value=1),
        "ContentType": datum(type="string", value=message.content_type),
        "ApplicationProperties": datum(type="json", value=json.dumps(message.application_properties)),
        "UserProperties": datum(type="json", value=json.dumps(message.application_properties)),
    }
    return ServiceBusMessageInConverter.decode(
        datum(type="bytes", value=body_of(message)), trigger_metadata=metadata
    )


# --- building messages --------------------------------------------------------------------------


def test_each_notice_becomes_one_message_with_id_type_and_properties() -> None:
    sender = FakeSender()
    queue = ServiceBusQueue("notices", sender=sender)
    notices = [make_notice(1), make_notice(2)]

    queue.send(notices)

    [batch] = sender.sent
    for message, sent in zip(batch, notices, strict=True):
        assert message.message_id == sent.dedup_id
        assert message.content_type == "application/json"
        assert message.session_id is None
        assert message.application_properties == {
            "source": "marketo",
            "entity": "person",
            "kind": "updated",
            "record_id": sent.record_id,
            "attempt": sent.attempt,
            "own_write": sent.own_write,
        }
        assert Notice.from_json(body_of(message)) == sent


def test_the_worker_decodes_what_was_sent() -> None:
    sender = FakeSender()
    sent = make_notice(7, email="jane.doe@example.com")
    ServiceBusQueue("notices", sender=sender).send([sent])

    delivered = as_trigger_message(sender.sent[0][0])

    assert delivered.message_id == sent.dedup_id
    assert notice_from_message(delivered) == sent


def test_empty_send_and_schedule_do_nothing() -> None:
    sender = FakeSender(failures=[sb.ServiceBusConnectionError(message="would fail")])
    queue = ServiceBusQueue("notices", sender=sender)
    queue.send([])
    queue.schedule([], WHEN)
    assert sender.sent == []
    assert sender.scheduled == []


# --- batching -----------------------------------------------------------------------------------


def test_a_full_batch_splits_without_losing_or_repeating_a_message() -> None:
    sender = FakeSender(link_size=2_000)
    notices = [make_notice(i, padding=100 + 37 * i) for i in range(25)]

    ServiceBusQueue("notices", sender=sender).send(notices)

    assert len(sender.sent) > 3
    ids = [m.message_id for batch in sender.sent for m in batch]
    assert ids == [n.dedup_id for n in notices]


def test_a_notice_too_large_for_any_batch_fails_before_anything_is_sent() -> None:
    sender = FakeSender(link_size=2_000)
    notices = [make_notice(1), make_notice(2), make_notice(3, padding=5_000)]

    with pytest.raises(PermanentError) as caught:
        ServiceBusQueue("notices", sender=sender).send(notices)

    assert caught.value.code == "MessageSizeExceeded"
    assert sender.sent == []


def test_schedule_uses_schedule_messages_in_batch_sized_groups() -> None:
    sender = FakeSender(link_size=2_000)
    notices = [make_notice(i, padding=300) for i in range(12)]
    at = WHEN + timedelta(minutes=5)

    ServiceBusQueue("notices", sender=sender).schedule(notices, at)

    assert sender.sent == []
    assert len(sender.scheduled) > 1
    assert all(when == at for _, when in sender.scheduled)
    ids = [m.message_id for group, _ in sender.scheduled for m in group]
    assert ids == [n.dedup_id for n in notices]


def test_naive_schedule_time_is_taken_as_utc() -> None:
    sender = FakeSender()
    ServiceBusQueue("notices", sender=sender).schedule([make_notice(1)], datetime(2030, 1, 1, 12, 5))
    assert sender.scheduled[0][1] == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (sb.ServiceBusConnectionError(message="down"), ServiceUnavailableError),
        (sb.OperationTimeoutError(message="slow"), ServiceUnavailableError),
        (sb.ServiceBusCommunicationError(message="dns"), ServiceUnavailableError),
        (sb.ServiceBusServerBusyError(message="busy"), RateLimitedError),
        (sb.ServiceBusQuotaExceededError(message="queue full"), ServiceUnavailableError),
        (sb.MessagingEntityNotFoundError(message="no such queue"), ConfigurationError),
        (sb.ServiceBusAuthenticationError(message="bad key"), ConfigurationError),
        (sb.ServiceBusAuthorizationError(message="no Data Sender role"), AccessDeniedError),
        (sb.ServiceBusError(message="something new"), ServiceUnavailableError),
    ],
)
def test_sdk_errors_map_to_ours(raised: Exception, expected: type[MdsyncError]) -> None:
    sender = FakeSender(failures=[raised])
    with pytest.raises(expected) as caught:
        ServiceBusQueue("notices", sender=sender).send([make_notice(1)])
    assert type(caught.value) is expected
    assert caught.value.__cause__ is raised
    if isinstance(caught.value, RateLimitedError):
        assert caught.value.retry_after == 10.0


def test_a_given_sender_is_kept_after_a_transient_failure() -> None:
    sender = FakeSender(failures=[sb.ServiceBusConnectionError(message="blip")])
    queue = ServiceBusQueue("notices", sender=sender)
    with pytest.raises(ServiceUnavailableError):
        queue.send([make_notice(1)])
    queue.send([make_notice(1)])
    assert [m.message_id for m in sender.sent[0]] == [make_notice(1).dedup_id]
    assert not sender.closed


def test_unreachable_namespace_is_transient_and_the_client_is_rebuilt() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    connection_string = (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
    # With both set, the connection string wins (as in the Functions host): no identity is tried.
    queue = ServiceBusQueue(
        "notices",
        connection_string=connection_string,
        fully_qualified_namespace="elsewhere.servicebus.windows.net",
        retry_total=0,
    )
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError) as caught:
            queue.send([make_notice(1)])
        assert caught.value.code == "ServiceBusConnectionError"
    queue.close()


def test_a_way_to_connect_is_required() -> None:
    with pytest.raises(ConfigurationError):
        ServiceBusQueue("notices")


def test_malformed_connection_string_is_a_configuration_error() -> None:
    queue = ServiceBusQueue("notices", connection_string="not a connection string")
    with pytest.raises(ConfigurationError):
        queue.send([make_notice(1)])


# --- decoding on the trigger side ---------------------------------------------------------------


def _message(body: bytes) -> Any:
    return ServiceBusMessageInConverter.decode(
        meta.Datum(type="bytes", value=body),
        trigger_metadata={
            "MessageId": meta.Datum(type="string", value="m-1"),
            "UserProperties": meta.Datum(type="json", value="{}"),
        },
    )


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"source": "marketo"}'])
def test_a_body_that_is_not_a_notice_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequestError):
        notice_from_message(_message(body))


def test_a_bad_notice_error_names_fields_but_not_their_values() -> None:
    data = json.loads(make_notice(1, email="jane.doe@example.com").to_json())
    data["kind"] = "jane.doe@example.com"
    with pytest.raises(BadRequestError) as caught:
        notice_from_message(_message(json.dumps(data).encode()))
    assert "kind" in str(caught.value)
    assert "jane.doe" not in str(caught.value)
