"""The console's view of the Service Bus queue: exact totals, an estimated split per lane.

Service Bus counts messages but does not say what they carry. So:

- the totals are the queue's own (``ServiceBusAdministrationClient.get_queue_runtime_properties``:
  active, scheduled and dead-lettered counts; the identity needs the Manage right, which the
  Bicep grants as Azure Service Bus Data Owner on this one queue);
- their split per entity and direction is estimated from up to ``sample`` messages peeked at the
  head of the queue and of its dead-letter sub-queue (a peek locks nothing and changes nothing;
  it sees active and scheduled messages, oldest first), scaled to the totals so the lanes add up
  exactly (largest remainders);
- the oldest waiting change per lane is the oldest among the peeked ones: the queue's head is
  its oldest enqueued message, so this is exact for the lane of the head and a bound otherwise.

``QueueStats.exact`` is False and ``sampled`` says how many messages the split rests on; the
console prints both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.console.pause import is_held
from shared.ports import BacklogRow, QueueInspector, QueueStats

log = logging.getLogger(__name__)

DEFAULT_SAMPLE = 250
WAITING, SCHEDULED, HELD = "waiting", "scheduled", "held"


@dataclass(frozen=True)
class Peeked:
    """What the split needs of one peeked message."""

    lane: tuple[str, str]
    state: str
    captured_at: datetime | None


def read_peeked(message_id: str, body: bytes | str, scheduled_for: datetime | None, now: datetime) -> Peeked:
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    direction = "to_marketo" if data.get("source") == "dynamics" else "to_dynamics"
    entity = str(data.get("entity") or "person")
    if is_held(message_id):
        state = HELD
    elif (scheduled_for is not None and scheduled_for > now) or int(data.get("attempt") or 0) > 0:
        state = SCHEDULED
    else:
        state = WAITING
    captured = data.get("captured_at")
    try:
        moment = datetime.fromisoformat(str(captured).replace("Z", "+00:00")) if captured else None
    except ValueError:
        moment = None
    return Peeked((entity, direction), state, moment)


def apportion(total: int, weights: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """Split ``total`` in proportion to ``weights`` so the parts add up to it exactly."""
    weight = sum(weights.values())
    if total <= 0 or weight <= 0:
        return dict.fromkeys(weights, 0)
    shares = {lane: total * w / weight for lane, w in weights.items()}
    parts = {lane: int(share) for lane, share in shares.items()}
    left = total - sum(parts.values())
    for lane in sorted(shares, key=lambda k: (parts[k] - shares[k], k))[:left]:
        parts[lane] += 1
    return parts


def estimate(
    active: int, scheduled: int, dead: int, head: Sequence[Peeked], dead_head: Sequence[Peeked]
) -> QueueStats:
    lanes = sorted({p.lane for p in head} | {p.lane for p in dead_head})
    waiting = apportion(
        active, {lane: sum(p.lane == lane and p.state == WAITING for p in head) for lane in lanes}
    )
    later_weights = {lane: sum(p.lane == lane and p.state != WAITING for p in head) for lane in lanes}
    later = apportion(scheduled, later_weights)
    held_share = {
        lane: (sum(p.lane == lane and p.state == HELD for p in head) / later_weights[lane])
        if later_weights[lane]
        else 0.0
        for lane in lanes
    }
    dead_split = apportion(dead, {lane: sum(p.lane == lane for p in dead_head) for lane in lanes})
    rows = []
    for lane in lanes:
        held = round(later[lane] * held_share[lane])
        oldest = min((p.captured_at for p in head if p.lane == lane and p.captured_at), default=None)
        rows.append(
            BacklogRow(
                entity=lane[0],
                direction=lane[1],
                waiting=waiting[lane],
                retrying=later[lane] - held,
                held=held,
                dead_lettered=dead_split[lane],
                oldest_waiting=oldest,
            )
        )
    return QueueStats(rows, active, scheduled, dead, exact=False, sampled=len(head) + len(dead_head))


class ServiceBusInspector(QueueInspector):
    """Counts and samples one queue; the clients are made on first use (the SDK loads lazily)."""

    def __init__(
        self,
        queue_name: str,
        *,
        connection_string: str | None = None,
        fully_qualified_namespace: str | None = None,
        credential: Any = None,
        sample: int = DEFAULT_SAMPLE,
        clients: Callable[[], tuple[Any, Any]] | None = None,
    ) -> None:
        self.queue_name = queue_name
        self.sample = sample
        self._connection_string = connection_string
        self._namespace = fully_qualified_namespace
        self._credential = credential
        self._clients = clients
        self._pair: tuple[Any, Any] | None = None

    def _client_pair(self) -> tuple[Any, Any]:
        if self._pair is None:
            self._pair = (self._clients or self._make_clients)()
        return self._pair

    def _make_clients(self) -> tuple[Any, Any]:
        from azure.servicebus import ServiceBusClient  # noqa: PLC0415 - lazy: cold start
        from azure.servicebus.management import ServiceBusAdministrationClient  # noqa: PLC0415

        if self._connection_string:
            return (
                ServiceBusAdministrationClient.from_connection_string(self._connection_string),
                ServiceBusClient.from_connection_string(self._connection_string),
            )
        credential = self._credential
        if credential is None:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415

            credential = DefaultAzureCredential()
        namespace = str(self._namespace)
        return (
            ServiceBusAdministrationClient(namespace, credential),
            ServiceBusClient(namespace, credential),
        )

    def stats(self) -> QueueStats:
        from azure.servicebus import ServiceBusSubQueue  # noqa: PLC0415

        admin, client = self._client_pair()
        properties = admin.get_queue_runtime_properties(self.queue_name)
        now = datetime.now(UTC)
        with client.get_queue_receiver(self.queue_name) as receiver:
            head = [_peeked(m, now) for m in receiver.peek_messages(max_message_count=self.sample)]
        with client.get_queue_receiver(self.queue_name, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
            dead_head = [_peeked(m, now) for m in receiver.peek_messages(max_message_count=self.sample)]
        return estimate(
            int(properties.active_message_count),
            int(properties.scheduled_message_count),
            int(properties.dead_letter_message_count),
            head,
            dead_head,
        )


def _body(message: Any) -> bytes | str:
    body = message.body
    return body if isinstance(body, bytes | str) else b"".join(bytes(part) for part in body)


def _peeked(message: Any, now: datetime) -> Peeked:
    return read_peeked(str(message.message_id), _body(message), message.scheduled_enqueue_time_utc, now)
