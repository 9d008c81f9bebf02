"""The Service Bus trigger, fed from a :class:`shared.ports.LocalQueue`.

Like the extension with ``autoCompleteMessages=true``: messages are received under a peek-lock;
``cardinality="many"`` hands the function a list of up to ``maxMessageBatchSize`` messages,
``"one"`` runs up to ``maxConcurrentCalls`` single-message invocations side by side; success
completes every message of the invocation (``complete_all``: one commit for the batch in the
embedded queue), an exception abandons every one of them (the queue redelivers, and
dead-letters after its maximum delivery count). No ordering is promised.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

from azure.functions.servicebus import ServiceBusMessage

from mdsync.devhost.discovery import FunctionSpec, ServiceBusTrigger
from mdsync.devhost.invoke import invoke
from shared.ports import LocalQueue, ReceivedMessage

log = logging.getLogger(__name__)

# The single-message lock is renewed up to maxAutoLockRenewalDuration (5 min) in Azure; the
# local queue has no renewal, so the lock is taken that long from the start.
DEFAULT_LOCK_SECONDS = 300.0
# How long an idle pump waits before polling again; wake() cuts it short.
DEFAULT_IDLE_WAIT = 0.25


def to_message(received: ReceivedMessage, *, locked_until: datetime) -> ServiceBusMessage:
    """The message object the worker would build for this delivery."""
    return ServiceBusMessage(
        body=received.body.encode("utf-8"),
        message_id=received.message_id,
        delivery_count=received.delivery_count,
        enqueued_time_utc=received.enqueued_at,
        lock_token=received.lock_token,
        locked_until=locked_until,
        content_type="application/json",
        application_properties={},
        user_properties={},
    )


class QueuePump:
    """Delivers messages from ``queue`` to one Service Bus-triggered function."""

    def __init__(
        self,
        spec: FunctionSpec,
        queue: LocalQueue,
        *,
        max_batch_size: int,
        max_concurrent_calls: int,
        lock_seconds: float = DEFAULT_LOCK_SECONDS,
        idle_wait: float = DEFAULT_IDLE_WAIT,
        min_batch_size: int = 1,
        max_batch_wait: float = 0.0,
    ) -> None:
        if not isinstance(spec.trigger, ServiceBusTrigger):
            raise TypeError(f"{spec.name} is not a Service Bus function")
        self.spec = spec
        self.many = spec.trigger.many
        self._queue = queue
        self._receive_count = max_batch_size if self.many else max_concurrent_calls
        self._lock_seconds = lock_seconds
        self._idle_wait = idle_wait
        self._min_batch = min(min_batch_size, self._receive_count) if self.many else 1
        self._max_batch_wait = max_batch_wait
        self._reason = f"New ServiceBus message detected on '{spec.trigger.queue_name}'."
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._released = threading.Event()
        self._released.set()
        # Held by the loop from its look at _released to the end of its receive: once hold()
        # has it, no receive is under way, so nothing sent afterwards is handed over.
        self._receiving = threading.Lock()
        self._pool = (
            None
            if self.many
            else ThreadPoolExecutor(max_concurrent_calls, thread_name_prefix=f"sb-{spec.name}")
        )
        self._thread = threading.Thread(target=self._loop, name=f"pump-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Poll now (a sender in this process just queued something)."""
        self._wake.set()

    def hold(self) -> None:
        """Receive nothing until release(); the invocation in progress finishes. Messages wait
        in the queue, as they would while a function app is stopped. Once this returns, what is
        sent is not received (a receive under way finishes first)."""
        self._released.clear()
        with self._receiving:
            pass

    def release(self) -> None:
        self._released.set()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop receiving; the invocation in progress finishes and is settled."""
        self._stop.set()
        self._wake.set()
        self._released.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            received = self._receive_unless_held()
            if received is None:
                self._released.wait()
                continue
            if not received:
                self._wake.wait(self._idle_wait)
                continue
            if self._pool is None:
                self._deliver(received)
            else:
                wait([self._pool.submit(self._deliver, [one]) for one in received])

    def _receive_unless_held(self) -> list[ReceivedMessage] | None:
        """What is ready (maybe nothing), or None while held."""
        with self._receiving:
            if not self._released.is_set():
                return None
            self._wake.clear()
            return self._collect()

    def _collect(self) -> list[ReceivedMessage]:
        """Like the Service Bus extension with minMessageBatchSize: once something arrived, keep
        gathering (holding the locks) until the minimum is reached or maxBatchWaitTime passed,
        so a burst is handed over in a few large batches rather than many small ones."""
        batch = self._receive(self._receive_count)
        if not batch or len(batch) >= self._min_batch:
            return batch
        deadline = time.monotonic() + self._max_batch_wait
        while len(batch) < self._min_batch and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.wait(min(0.05, remaining))
            self._wake.clear()
            batch += self._receive(self._receive_count - len(batch))
        return batch

    def _receive(self, count: int) -> list[ReceivedMessage]:
        try:
            return self._queue.receive(count, lock_seconds=self._lock_seconds)
        except Exception:
            log.exception("receiving from the local queue failed; retrying")
            return []

    def _deliver(self, received: Sequence[ReceivedMessage]) -> None:
        locked_until = datetime.now(UTC) + timedelta(seconds=self._lock_seconds)
        messages = [to_message(r, locked_until=locked_until) for r in received]
        try:
            invoke(self.spec, messages if self.many else messages[0], reason=self._reason)
        except Exception:  # already logged by invoke; the queue decides redelivery or DLQ
            self._settle(received, self._queue.abandon, "abandon")
        else:
            self._complete(received)

    def _complete(self, received: Sequence[ReceivedMessage]) -> None:
        try:
            lost = set(self._queue.complete_all([one.lock_token for one in received]))
        except Exception:  # nothing settled: every message comes back, as on Service Bus
            log.warning("could not complete %d message(s)", len(received), exc_info=True)
            return
        for one in received:
            if one.lock_token in lost:
                log.warning("could not complete message %s (lock lost)", one.message_id)

    def _settle(self, received: Sequence[ReceivedMessage], action: Callable[[str], None], verb: str) -> None:
        for one in received:
            try:
                action(one.lock_token)
            except Exception:  # lock lost: the message comes back, as on Service Bus
                log.warning("could not %s message %s (lock lost?)", verb, one.message_id, exc_info=True)
