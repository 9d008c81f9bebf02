"""The embedded notice queue: SQLite with the Service Bus semantics the worker relies on.

- Peek-lock: ``receive`` locks messages for ``lock_seconds``; a locked message is invisible until
  it is completed, abandoned, dead-lettered, or its lock expires. Every delivery counts
  (the first one is 1), including one whose lock simply expired.
- ``abandon`` releases the lock at once. A message already delivered ``max_delivery_count``
  times goes to the dead-letter list with reason ``MaxDeliveryCountExceeded`` instead, on
  abandon or when its last lock expires.
- Duplicate detection: a notice whose ``dedup_id`` (the message id) was sent or scheduled within
  ``duplicate_window_seconds`` is accepted and dropped, as Service Bus does.
- FIFO by enqueue time then sequence; a scheduled message is enqueued at its scheduled time.
- Bodies are delivered as they were sent, read or not: like the Service Bus trigger, the queue
  does not judge what it carries, and the worker keeps what it cannot read (parked with its raw
  body), the same way here and in Azure.
- Dead letters stay until removed; ``LocalDeadLetters`` lists them for ``mdsync replay``, which
  queues a replacement and removes the dead letter only once the replacement is queued.

Several queues may live in one file (``queue_name``), beside the state store's tables.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.adapters._clock import Clock, system_clock, to_datetime
from shared.adapters._sqlite import SqliteDatabase, chunks, in_list
from shared.errors import ConflictError
from shared.notices import Notice
from shared.ports import (
    BacklogRow,
    DeadLetter,
    GivenUp,
    GivenUpStore,
    LocalQueue,
    QueueInspector,
    QueueStats,
    RawMessage,
    ReceivedMessage,
)

logger = logging.getLogger(__name__)

SERVICE = "queue"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    locked_until REAL,
    dead_at REAL,
    dead_reason TEXT,
    dead_description TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready
    ON queue_messages (queue, dead_at, enqueued_at, seq);
CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_lock ON queue_messages (lock_token);
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (queue, message_id)
);
-- Every send forgets the ids older than the duplicate window: without this, a scan per send.
CREATE INDEX IF NOT EXISTS queue_dedup_age ON queue_dedup (queue, sent_at);
"""

_READY = """
    SELECT seq, message_id, body, delivery_count, enqueued_at FROM queue_messages
    WHERE queue = ? AND dead_at IS NULL AND enqueued_at <= ?
      AND (locked_until IS NULL OR (locked_until <= ? AND delivery_count < ?))
    ORDER BY enqueued_at, seq LIMIT ?
"""
_READY_COUNT = "SELECT COUNT(*) FROM (" + _READY + ")"  # noqa: S608 - constant text


class SqliteQueue(LocalQueue, QueueInspector):
    """A durable local queue in one SQLite file (see the module docstring for the semantics)."""

    def __init__(
        self,
        path: Path,
        *,
        queue_name: str = "mdsync-notices",
        max_delivery_count: int = 10,
        duplicate_window_seconds: float = 600,
        busy_timeout: float = 5.0,
        clock: Clock = system_clock,
    ) -> None:
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        self.queue_name = queue_name
        self.max_delivery_count = max_delivery_count
        self.duplicate_window_seconds = duplicate_window_seconds
        self._clock = clock
        self._db = SqliteDatabase(path, service=SERVICE, schema=_SCHEMA, busy_timeout=busy_timeout)

    # --- sending -----------------------------------------------------------------------------

    def send(self, notices: Sequence[Notice]) -> None:
        self._enqueue(_raw(notices), at=None)

    def schedule(self, notices: Sequence[Notice], at: datetime) -> None:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        self._enqueue(_raw(notices), at=at.timestamp())

    def send_raw(self, messages: Sequence[RawMessage], *, at: datetime | None = None) -> None:
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        self._enqueue(messages, at=at.timestamp() if at is not None else None)

    def _enqueue(self, messages: Sequence[RawMessage], *, at: float | None) -> None:
        if not messages:
            return
        now = self._clock()
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM queue_dedup WHERE queue = ? AND sent_at <= ?",
                (self.queue_name, now - self.duplicate_window_seconds),
            )
            fresh = self._unsent(conn, messages)
            # One statement per table for the whole send (a poll run sends thousands at once).
            conn.executemany(
                "INSERT INTO queue_dedup (queue, message_id, sent_at) VALUES (?, ?, ?)"
                " ON CONFLICT (queue, message_id) DO NOTHING",
                [(self.queue_name, m.message_id, now) for m in fresh],
            )
            conn.executemany(
                "INSERT INTO queue_messages (queue, message_id, body, enqueued_at) VALUES (?, ?, ?, ?)",
                [(self.queue_name, m.message_id, m.body, now if at is None else at) for m in fresh],
            )
        dropped = len(messages) - len(fresh)
        if dropped:
            logger.debug("queue %s: dropped %d duplicate notice(s)", self.queue_name, dropped)

    def _unsent(self, conn: sqlite3.Connection, messages: Sequence[RawMessage]) -> list[RawMessage]:
        """The messages not sent within the window (by id), each id's first only."""
        first: dict[str, int] = {}
        for i, message in enumerate(messages):
            first.setdefault(message.message_id, i)
        for chunk in chunks(list(first)):
            query = in_list("SELECT message_id FROM queue_dedup WHERE queue = ? AND message_id", chunk)
            for (message_id,) in conn.execute(query, (self.queue_name, *chunk)):
                del first[message_id]
        return [messages[i] for i in sorted(first.values())]

    # --- receiving and settling ----------------------------------------------------------------

    def receive(self, max_count: int, *, lock_seconds: float = 60.0) -> list[ReceivedMessage]:
        if max_count < 1:
            return []
        now = self._clock()
        received: list[ReceivedMessage] = []
        with self._db.write() as conn:
            self._expire_exhausted(conn, now)
            rows = conn.execute(_READY, self._ready_args(now, max_count)).fetchall()
            for seq, message_id, body, delivery_count, enqueued_at in rows:
                token = uuid.uuid4().hex
                conn.execute(
                    "UPDATE queue_messages SET lock_token = ?, locked_until = ?,"
                    " delivery_count = delivery_count + 1 WHERE seq = ?",
                    (token, now + lock_seconds, seq),
                )
                received.append(
                    ReceivedMessage(
                        body=body,
                        message_id=message_id,
                        lock_token=token,
                        delivery_count=delivery_count + 1,
                        enqueued_at=to_datetime(enqueued_at),
                    )
                )
        return received

    def complete(self, lock_token: str) -> None:
        with self._db.write() as conn:
            seq, _ = self._locked(conn, lock_token)
            conn.execute("DELETE FROM queue_messages WHERE seq = ?", (seq,))

    def complete_all(self, lock_tokens: Sequence[str]) -> list[str]:
        """One transaction (one commit, one fsync) for the batch, not one per message."""
        lost = []
        now = self._clock()
        with self._db.write() as conn:
            for token in lock_tokens:
                deleted = conn.execute(
                    "DELETE FROM queue_messages"
                    " WHERE lock_token = ? AND dead_at IS NULL AND locked_until > ?",
                    (token, now),
                ).rowcount
                if deleted != 1:
                    lost.append(token)
        return lost

    def abandon(self, lock_token: str) -> None:
        now = self._clock()
        with self._db.write() as conn:
            seq, delivery_count = self._locked(conn, lock_token)
            if delivery_count >= self.max_delivery_count:
                self._kill(conn, seq, MAX_DELIVERY_COUNT_EXCEEDED, self._exhausted_text(), now)
                return
            conn.execute(
                "UPDATE queue_messages SET lock_token = NULL, locked_until = NULL WHERE seq = ?",
                (seq,),
            )

    def dead_letter(self, lock_token: str, reason: str, description: str = "") -> None:
        now = self._clock()
        with self._db.write() as conn:
            seq, _ = self._locked(conn, lock_token)
            self._kill(conn, seq, reason, description, now)

    def _locked(self, conn: sqlite3.Connection, lock_token: str) -> tuple[int, int]:
        """The message held under ``lock_token``; ConflictError if the lock is gone."""
        row = conn.execute(
            "SELECT seq, delivery_count FROM queue_messages WHERE lock_token = ?"
            " AND dead_at IS NULL AND locked_until > ?",
            (lock_token, self._clock()),
        ).fetchone()
        if row is None:
            raise ConflictError(
                "the lock on the message expired or the message was already settled",
                service=SERVICE,
                code="MessageLockLost",
            )
        return int(row[0]), int(row[1])

    def _kill(self, conn: sqlite3.Connection, seq: int, reason: str, description: str, now: float) -> None:
        conn.execute(
            "UPDATE queue_messages SET dead_at = ?, dead_reason = ?, dead_description = ?,"
            " lock_token = NULL, locked_until = NULL WHERE seq = ?",
            (now, reason, description, seq),
        )

    def _expire_exhausted(self, conn: sqlite3.Connection, now: float) -> None:
        """Dead-letter messages whose last allowed delivery ended with an expired lock."""
        conn.execute(
            "UPDATE queue_messages SET dead_at = ?, dead_reason = ?, dead_description = ?,"
            " lock_token = NULL, locked_until = NULL"
            " WHERE queue = ? AND dead_at IS NULL AND locked_until <= ? AND delivery_count >= ?",
            (
                now,
                MAX_DELIVERY_COUNT_EXCEEDED,
                self._exhausted_text(),
                self.queue_name,
                now,
                self.max_delivery_count,
            ),
        )

    def _exhausted_text(self) -> str:
        return f"Message could not be consumed after {self.max_delivery_count} delivery attempts."

    # --- inspection and replay -------------------------------------------------------------------

    def active_count(self) -> int:
        with self._db.write() as conn:
            self._expire_exhausted(conn, self._clock())
            row = conn.execute(
                "SELECT COUNT(*) FROM queue_messages WHERE queue = ? AND dead_at IS NULL",
                (self.queue_name,),
            ).fetchone()
        return int(row[0])

    def dead_letters(self) -> list[DeadLetter]:
        return self.peek_dead_letters()

    def peek_dead_letters(self, max_count: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first, without removing them."""
        with self._db.write() as conn:
            self._expire_exhausted(conn, self._clock())
            rows = conn.execute(
                "SELECT message_id, body, dead_reason, dead_description, dead_at FROM queue_messages"
                " WHERE queue = ? AND dead_at IS NOT NULL ORDER BY dead_at, seq LIMIT ?",
                (self.queue_name, -1 if max_count is None else max_count),
            ).fetchall()
        return [
            DeadLetter(
                message_id=message_id,
                body=body,
                reason=reason,
                description=description or "",
                dead_lettered_at=to_datetime(dead_at),
            )
            for message_id, body, reason, description, dead_at in rows
        ]

    def delete_dead_letters(self, message_ids: Iterable[str]) -> int:
        """Remove dead letters (unknown ids are ignored); returns how many were removed."""
        removed = 0
        with self._db.write() as conn:
            for message_id in dict.fromkeys(message_ids):
                cursor = conn.execute(
                    "DELETE FROM queue_messages WHERE queue = ? AND message_id = ? AND dead_at IS NOT NULL",
                    (self.queue_name, message_id),
                )
                removed += cursor.rowcount
        return removed

    def stats(self) -> QueueStats:
        """Exact counts per lane (the console's backlog), in one grouped query."""
        now = self._clock()
        with self._db.write() as conn:
            self._expire_exhausted(conn, now)
            rows = conn.execute(_LANES, (now, self.queue_name)).fetchall()
        return lane_stats(rows)

    def wait_for_messages(self, timeout: float, *, poll_interval: float = 0.05) -> bool:
        """Block up to ``timeout`` seconds until a message is ready; True if one is."""
        deadline = time.monotonic() + timeout
        while True:
            if self._ready_count() > 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(poll_interval, remaining))

    def _ready_count(self) -> int:
        now = self._clock()
        with self._db.read() as conn:
            row = conn.execute(_READY_COUNT, self._ready_args(now, 1)).fetchone()
        return int(row[0])

    def _ready_args(self, now: float, limit: int) -> tuple[str, float, float, int, int]:
        return (self.queue_name, now, now, self.max_delivery_count, limit)

    def compact(self) -> None:
        """Keep the file from growing: forget message ids older than the duplicate window and
        give the pages of settled messages back (see SqliteDatabase.compact). Waiting, locked,
        scheduled and dead-lettered messages stay as they are."""
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM queue_dedup WHERE queue = ? AND sent_at <= ?",
                (self.queue_name, self._clock() - self.duplicate_window_seconds),
            )
        self._db.compact()

    def close(self) -> None:
        self._db.close()


def _raw(notices: Sequence[Notice]) -> list[RawMessage]:
    return [RawMessage(n.dedup_id, n.to_json()) for n in notices]


class LocalDeadLetters(GivenUpStore):
    """The embedded queue's dead letters, as ``mdsync replay`` sees them."""

    name = "dead-letter"

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue

    def peek(self, max_count: int) -> list[GivenUp]:
        return [
            GivenUp(
                store=self.name,
                item_id=d.message_id,
                body=d.body,
                reason=f"{d.reason}: {d.description}" if d.description else d.reason,
                at=d.dead_lettered_at,
            )
            for d in self.queue.peek_dead_letters(max_count)
        ]

    def take(self, max_count: int) -> list[GivenUp]:
        # One operator at a time: nothing else settles dead letters of the embedded queue.
        return self.peek(max_count)

    def remove(self, items: Sequence[GivenUp]) -> None:
        self.queue.delete_dead_letters(item.item_id for item in items)


# --- the console's view of the queue ----------------------------------------------------------

# One pass over the queue's rows, grouped in SQL: what each lane holds and its oldest change.
_LANES = """
    SELECT json_extract(body, '$.source'), json_extract(body, '$.entity'),
        CASE WHEN dead_at IS NOT NULL THEN 'dead'
             WHEN message_id GLOB '*-h[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
                  || '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]' THEN 'held'
             WHEN enqueued_at > ? OR coalesce(json_extract(body, '$.attempt'), 0) > 0 THEN 'scheduled'
             ELSE 'waiting' END,
        COUNT(*),
        MIN(CASE WHEN dead_at IS NULL THEN json_extract(body, '$.captured_at') END)
    FROM queue_messages WHERE queue = ? GROUP BY 1, 2, 3
"""


def lane_stats(rows: list[tuple[str | None, str | None, str, int, str | None]]) -> QueueStats:
    """Fold (source, entity, state, count, oldest captured_at) rows into the console's lanes."""
    lanes: dict[tuple[str, str], dict[str, Any]] = {}
    totals = {"waiting": 0, "scheduled": 0, "held": 0, "dead": 0}
    for source, entity, state, count, oldest in rows:
        direction = "to_marketo" if source == "dynamics" else "to_dynamics"
        lane = lanes.setdefault((entity or "person", direction), {"oldest": None})
        lane[state] = lane.get(state, 0) + count
        totals[state] += count
        if oldest and state != "dead":
            moment = datetime.fromisoformat(oldest.replace("Z", "+00:00"))
            if lane["oldest"] is None or moment < lane["oldest"]:
                lane["oldest"] = moment
    return QueueStats(
        rows=[
            BacklogRow(
                entity=entity,
                direction=direction,
                waiting=lane.get("waiting", 0),
                retrying=lane.get("scheduled", 0),
                held=lane.get("held", 0),
                dead_lettered=lane.get("dead", 0),
                oldest_waiting=lane["oldest"],
            )
            for (entity, direction), lane in sorted(lanes.items())
        ],
        waiting=totals["waiting"],
        scheduled=totals["scheduled"] + totals["held"],
        dead_lettered=totals["dead"],
    )
