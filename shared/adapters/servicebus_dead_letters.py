"""The Service Bus queue's dead letters, as ``mdsync replay`` sees them (azure-servicebus, sync API).

Listing peeks (``peek_messages``): nothing is locked, counted or changed. Replaying receives
from the dead-letter sub-queue under a peek-lock (``receive_messages``); a message is completed
only once its replacement was accepted by the queue, and abandoned (it stays a dead letter) when
it was not, so a failed replay loses nothing. Service Bus dead-letters a message after
``maxDeliveryCount`` deliveries (the worker crashed on its batch every time) or when a client
dead-letters it explicitly.

The receiver is created on first use from the same connection settings as the queue; a caller (a
test) may hand in its own at the SDK's edge (``DeadLetterReceiver``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.exceptions import AzureError
from azure.servicebus import ServiceBusReceivedMessage, ServiceBusReceiveMode, ServiceBusSubQueue

from shared.adapters.servicebus_queue import make_client, map_servicebus_error
from shared.ports import GivenUp, GivenUpStore

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.servicebus import ServiceBusClient

logger = logging.getLogger(__name__)

PAGE = 100  # messages per peek or receive call


class DeadLetterReceiver(Protocol):
    """The part of ``azure.servicebus.ServiceBusReceiver`` (on the dead-letter sub-queue) used here."""

    def peek_messages(
        self, max_message_count: int = 1, *, sequence_number: int = 0, timeout: float | None = None
    ) -> list[ServiceBusReceivedMessage]: ...

    def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> list[ServiceBusReceivedMessage]: ...

    def complete_message(self, message: ServiceBusReceivedMessage) -> None: ...

    def abandon_message(self, message: ServiceBusReceivedMessage) -> None: ...

    def close(self) -> None: ...


def _body(message: ServiceBusReceivedMessage) -> str:
    body: Any = message.body
    raw = body if isinstance(body, bytes) else b"".join(bytes(part) for part in body)
    # A body that is not UTF-8 cannot be a notice; what can be read of it is kept.
    return raw.decode("utf-8", "replace")


def given_up(message: ServiceBusReceivedMessage, store: str) -> GivenUp:
    reason = str(message.dead_letter_reason or "dead-lettered")
    description = message.dead_letter_error_description
    return GivenUp(
        store=store,
        item_id=str(message.message_id or message.sequence_number),
        body=_body(message),
        reason=f"{reason}: {description}" if description else reason,
        at=message.enqueued_time_utc or datetime.now(UTC),
    )


class ServiceBusDeadLetters(GivenUpStore):
    """The dead-letter sub-queue of one Service Bus queue."""

    name = "dead-letter"

    def __init__(
        self,
        queue_name: str,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: TokenCredential | None = None,
        receiver: DeadLetterReceiver | None = None,
        max_wait_seconds: float = 5.0,
    ) -> None:
        self.queue_name = queue_name
        self._connection = (connection_string, fully_qualified_namespace, credential)
        self._given = receiver
        self._receiver = receiver
        self._client: ServiceBusClient | None = None
        self._max_wait = max_wait_seconds
        self._held: dict[str, list[ServiceBusReceivedMessage]] = {}

    def peek(self, max_count: int) -> list[GivenUp]:
        found: list[ServiceBusReceivedMessage] = []
        after = 0
        with self._errors():
            receiver = self._get_receiver()
            while len(found) < max_count:
                page = receiver.peek_messages(min(PAGE, max_count - len(found)), sequence_number=after)
                if not page:
                    break
                found += page
                after = max(int(m.sequence_number or 0) for m in page) + 1
        return [given_up(m, self.name) for m in found]

    def take(self, max_count: int) -> list[GivenUp]:
        taken: list[GivenUp] = []
        with self._errors():
            receiver = self._get_receiver()
            while len(taken) < max_count:
                page = receiver.receive_messages(
                    min(PAGE, max_count - len(taken)), max_wait_time=self._max_wait
                )
                if not page:
                    break
                for message in page:
                    item = given_up(message, self.name)
                    self._held.setdefault(item.item_id, []).append(message)
                    taken.append(item)
        return taken

    def remove(self, items: Sequence[GivenUp]) -> None:
        self._settle(items, complete=True)

    def release(self, items: Sequence[GivenUp]) -> None:
        self._settle(items, complete=False)

    def _settle(self, items: Sequence[GivenUp], *, complete: bool) -> None:
        with self._errors():
            receiver = self._get_receiver()
            for item in items:
                held = self._held.get(item.item_id)
                if not held:
                    continue
                message = held.pop(0)
                if complete:
                    receiver.complete_message(message)
                else:
                    receiver.abandon_message(message)

    def close(self) -> None:
        receiver, client = self._receiver, self._client
        self._receiver, self._client, self._held = self._given, None, {}
        for closable in (receiver if receiver is not self._given else None, client):
            if closable is not None:
                closable.close()

    def _get_receiver(self) -> DeadLetterReceiver:
        if self._receiver is None:
            self._client = make_client(*self._connection)
            self._receiver = self._client.get_queue_receiver(
                queue_name=self.queue_name,
                sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                receive_mode=ServiceBusReceiveMode.PEEK_LOCK,
            )
        return self._receiver

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            raise map_servicebus_error(exc, f"{self.queue_name}/$DeadLetterQueue") from exc
