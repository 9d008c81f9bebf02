"""The production notice queue: an Azure Service Bus queue through azure-servicebus (sync API).

Each notice becomes one message: ``MessageId`` = the notice's dedup id (so the queue's duplicate
detection drops a notice seen twice), the body is the notice's JSON with content type
``application/json``, and a few application properties make messages readable in the portal and
filterable without parsing. No session ids: the worker reconciles, so order does not matter.

Sends are batched up to the size the link allows. All batches are built before the first one is
sent, so a notice too large for any batch fails the call before anything is queued; a failure
between two batches leaves the first ones queued, and the caller's retry is harmless because
duplicate detection drops what was already sent.

The client and sender are created on first use and reused (cold start, and one AMQP link per
process); a transient failure drops them so the next call reconnects. The SDK's sender is not
thread-safe, so one lock serialises the calls of the threads of a function host.

The trigger side gets messages from the Functions host, not from this class:
``shared.adapters.messages.notice_from_message`` decodes them without loading this module's SDK.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus import exceptions as sb

from shared.errors import (
    AccessDeniedError,
    ConfigurationError,
    MdsyncError,
    PermanentError,
    RateLimitedError,
    ServiceUnavailableError,
    TransientError,
)
from shared.notices import Notice
from shared.ports import NoticeQueue, RawMessage

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "MessageSender",
    "ServiceBusQueue",
    "application_properties",
    "map_servicebus_error",
    "to_message",
]

logger = logging.getLogger(__name__)

SERVICE = "servicebus"
CONTENT_TYPE = "application/json"
# Service Bus asks clients to wait this long after ServerBusy before trying again.
SERVER_BUSY_RETRY_AFTER = 10.0


class MessageSender(Protocol):
    """The part of ``azure.servicebus.ServiceBusSender`` this adapter uses."""

    def create_message_batch(self, max_size_in_bytes: int | None = None) -> ServiceBusMessageBatch: ...

    def send_messages(self, message: ServiceBusMessageBatch, *, timeout: float | None = None) -> None: ...

    def schedule_messages(
        self, messages: list[ServiceBusMessage], schedule_time_utc: datetime, *, timeout: float | None = None
    ) -> list[int]: ...

    def close(self) -> None: ...


def application_properties(notice: Notice) -> dict[str, str | int | bool]:
    return {
        "source": notice.source.value,
        "entity": notice.entity.value,
        "kind": notice.kind.value,
        "record_id": notice.record_id,
        "attempt": notice.attempt,
        "own_write": notice.own_write,
    }


def to_message(notice: Notice) -> ServiceBusMessage:
    return ServiceBusMessage(
        notice.to_json(),
        message_id=notice.dedup_id,
        content_type=CONTENT_TYPE,
        application_properties=application_properties(notice),  # type: ignore[arg-type]
    )


def raw_message(message: RawMessage) -> ServiceBusMessage:
    """A body sent as it is (a replay of what may not be a notice this code can read)."""
    return ServiceBusMessage(message.body, message_id=message.message_id, content_type=CONTENT_TYPE)


class ServiceBusQueue(NoticeQueue):
    """Sends and schedules notices on one Service Bus queue."""

    def __init__(
        self,
        queue_name: str,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: TokenCredential | None = None,
        sender: MessageSender | None = None,
        **client_options: Any,
    ) -> None:
        """Connect with ``connection_string`` (SAS; it wins when both are set, as in the
        Functions host) or with ``fully_qualified_namespace`` and an identity (``credential``,
        default ``DefaultAzureCredential``, which honours ``AZURE_CLIENT_ID`` for a user-assigned
        identity). ``sender`` replaces the SDK's sender (a caller that owns one, or a test);
        ``client_options`` go to ``ServiceBusClient``."""
        if sender is None and not (connection_string or fully_qualified_namespace):
            raise ConfigurationError(
                "the Service Bus queue needs ServiceBusConnection (a connection string) or "
                "ServiceBusConnection__fullyQualifiedNamespace (an identity-based connection)"
            )
        self.queue_name = queue_name
        self._connection_string = connection_string
        self._namespace = fully_qualified_namespace
        self._credential = credential
        self._client_options = client_options
        self._given_sender = sender
        self._client: ServiceBusClient | None = None
        self._sender: MessageSender | None = sender
        self._lock = threading.Lock()

    def send(self, notices: Sequence[Notice]) -> None:
        self._send([(n.dedup_id, to_message(n)) for n in notices])

    def send_raw(self, messages: Sequence[RawMessage], *, at: datetime | None = None) -> None:
        outgoing = [(m.message_id, raw_message(m)) for m in messages]
        if at is None:
            self._send(outgoing)
        else:
            self._schedule(outgoing, at)

    def _send(self, messages: Sequence[tuple[str, ServiceBusMessage]]) -> None:
        if not messages:
            return
        with self._lock, self._errors():
            sender = self._get_sender()
            for batch, _ in self._batches(sender, messages):
                sender.send_messages(batch)
        logger.debug("queue %s: sent %d message(s)", self.queue_name, len(messages))

    def schedule(self, notices: Sequence[Notice], at: datetime) -> None:
        self._schedule([(n.dedup_id, to_message(n)) for n in notices], at)

    def _schedule(self, outgoing: Sequence[tuple[str, ServiceBusMessage]], at: datetime) -> None:
        if not outgoing:
            return
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        with self._lock, self._errors():
            sender = self._get_sender()
            # One management request per batch-sized group, so no request exceeds the link's size.
            for _, messages in self._batches(sender, outgoing):
                sender.schedule_messages(messages, at)
        logger.debug("queue %s: scheduled %d message(s)", self.queue_name, len(outgoing))

    def probe(self) -> None:
        """Open the sender's link (connect and authenticate) without sending: `mdsync doctor`."""
        with self._lock, self._errors():
            self._get_sender().create_message_batch()

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def _batches(
        self, sender: MessageSender, outgoing: Sequence[tuple[str, ServiceBusMessage]]
    ) -> list[tuple[ServiceBusMessageBatch, list[ServiceBusMessage]]]:
        """Every message in exactly one batch, in order; built before anything is sent."""
        batches: list[tuple[ServiceBusMessageBatch, list[ServiceBusMessage]]] = []
        batch = sender.create_message_batch()
        messages: list[ServiceBusMessage] = []
        for message_id, message in outgoing:
            try:
                batch.add_message(message)
            except sb.MessageSizeExceededError:
                if not messages:
                    raise self._too_large(message_id, batch.max_size_in_bytes) from None
                batches.append((batch, messages))
                batch, messages = sender.create_message_batch(), []
                try:
                    batch.add_message(message)
                except sb.MessageSizeExceededError:
                    raise self._too_large(message_id, batch.max_size_in_bytes) from None
            messages.append(message)
        if messages:
            batches.append((batch, messages))
        return batches

    @staticmethod
    def _too_large(message_id: str, limit: int) -> PermanentError:
        return PermanentError(
            f"notice {message_id} does not fit in a message ({limit} bytes allowed)",
            service=SERVICE,
            code="MessageSizeExceeded",
        )

    def _get_sender(self) -> MessageSender:
        if self._sender is None:
            self._client = self._make_client()
            self._sender = self._client.get_queue_sender(queue_name=self.queue_name)
        return self._sender

    def _make_client(self) -> ServiceBusClient:
        return make_client(self._connection_string, self._namespace, self._credential, **self._client_options)

    def _drop_connection(self) -> None:
        sender, client = self._sender, self._client
        self._sender, self._client = self._given_sender, None
        for closable in (sender if sender is not self._given_sender else None, client):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # closing a broken link must not hide the original error
                    logger.debug("closing the Service Bus link failed", exc_info=True)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            mapped = map_servicebus_error(exc, self.queue_name)
            if isinstance(mapped, TransientError):
                self._drop_connection()
            raise mapped from exc


def make_client(
    connection_string: str | None,
    fully_qualified_namespace: str | None,
    credential: TokenCredential | None,
    **client_options: Any,
) -> ServiceBusClient:
    """A client from a connection string (SAS; it wins when both are set, as in the Functions
    host) or from the namespace and an identity (default ``DefaultAzureCredential``)."""
    if connection_string:
        try:
            return ServiceBusClient.from_connection_string(connection_string, **client_options)
        except ValueError as exc:
            raise ConfigurationError(f"ServiceBusConnection is not valid: {exc}") from exc
    if not fully_qualified_namespace:
        raise ConfigurationError(
            "Service Bus needs ServiceBusConnection (a connection string) or "
            "ServiceBusConnection__fullyQualifiedNamespace (an identity-based connection)"
        )
    if credential is None:
        # Imported here: azure.identity costs ~0.1 s of cold start.
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415

        credential = DefaultAzureCredential()
    return ServiceBusClient(
        fully_qualified_namespace=fully_qualified_namespace, credential=credential, **client_options
    )


def _classify() -> list[tuple[type[Exception], Callable[[str, str], MdsyncError]]]:
    def unavailable(code: str, message: str) -> MdsyncError:
        return ServiceUnavailableError(message, service=SERVICE, code=code)

    def busy(code: str, message: str) -> MdsyncError:
        return RateLimitedError(message, service=SERVICE, code=code, retry_after=SERVER_BUSY_RETRY_AFTER)

    def denied(code: str, message: str) -> MdsyncError:
        return AccessDeniedError(message, service=SERVICE, code=code)

    def misconfigured(code: str, message: str) -> MdsyncError:
        return ConfigurationError(f"Service Bus: {message} [{code}]")

    def permanent(code: str, message: str) -> MdsyncError:
        return PermanentError(message, service=SERVICE, code=code)

    # Order matters: the first matching class wins.
    return [
        (sb.ServiceBusServerBusyError, busy),
        # A full queue drains: the caller should answer 503 / keep its checkpoint and retry.
        (sb.ServiceBusQuotaExceededError, unavailable),
        (sb.MessagingEntityNotFoundError, misconfigured),
        (sb.ServiceBusAuthenticationError, misconfigured),
        (ClientAuthenticationError, misconfigured),
        (sb.ServiceBusAuthorizationError, denied),
        (sb.MessageSizeExceededError, permanent),
        (sb.MessagingEntityAlreadyExistsError, permanent),
        (sb.OperationTimeoutError, unavailable),
        (sb.ServiceBusConnectionError, unavailable),
        (sb.ServiceBusCommunicationError, unavailable),
        (sb.MessagingEntityDisabledError, unavailable),
    ]


def map_servicebus_error(exc: Exception, queue_name: str) -> MdsyncError:
    """Our error for an SDK error; an unknown one is transient, so no notice is dropped on it."""
    code = type(exc).__name__
    message = f"queue {queue_name}: {str(exc).strip().splitlines()[0] if str(exc).strip() else code}"
    for exc_type, make in _classify():
        if isinstance(exc, exc_type):
            return make(code, message)
    return ServiceUnavailableError(message, service=SERVICE, code=code)
