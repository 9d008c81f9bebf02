"""Random interleavings of queue operations keep the invariants the worker relies on.

Hypothesis drives sends (with repeated ids), receives, completes, abandons, dead-letters and
clock moves against one SqliteQueue and checks after every step that no message is lost or
duplicated (duplicate detection included), that one message is never held under two live
locks, that expired locks are refused and live ones honoured, and that no message is delivered
more often than allowed.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.adapters.sqlite_queue import SqliteQueue
from shared.errors import ConflictError
from shared.notices import Entity, Kind, Notice, Source
from tests.adapters.conftest import FakeClock

MAX_DELIVERIES = 3
# Longer than any run: each message id is queued once, so ids name messages here.
WINDOW = 1e9
RECORDS = [f"r{i}" for i in range(6)]


def make(record: str) -> Notice:
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id=record,
        kind=Kind.UPDATED,
        occurred_at=datetime(2030, 1, 1, tzinfo=UTC),
        captured_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.clock = FakeClock()
        self.queue = SqliteQueue(
            Path(self.dir.name) / "q.sqlite3",
            max_delivery_count=MAX_DELIVERIES,
            duplicate_window_seconds=WINDOW,
            clock=self.clock,
        )
        self.last_accepted: dict[str, float] = {}
        self.accepted = 0
        self.completed = 0
        self.held: dict[str, tuple[str, float]] = {}  # lock token -> (message id, locked until)

    def teardown(self) -> None:
        self.queue.close()
        self.dir.cleanup()

    @rule(records=st.lists(st.sampled_from(RECORDS), min_size=1, max_size=4))
    def send(self, records: list[str]) -> None:
        notices = [make(r) for r in records]
        for n in notices:
            last = self.last_accepted.get(n.dedup_id)
            if last is None or self.clock.now - last >= WINDOW:
                self.last_accepted[n.dedup_id] = self.clock.now
                self.accepted += 1
        self.queue.send(notices)

    @rule(count=st.integers(1, 4), lock=st.sampled_from([5.0, 30.0]))
    def receive(self, count: int, lock: float) -> None:
        live = {mid for mid, until in self.held.values() if until > self.clock.now}
        for got in self.queue.receive(count, lock_seconds=lock):
            assert got.message_id not in live, "a message was handed out under two live locks"
            assert 1 <= got.delivery_count <= MAX_DELIVERIES
            self.held[got.lock_token] = (got.message_id, self.clock.now + lock)

    def _settle(self, token: str, action: str) -> None:
        _, until = self.held.pop(token)
        try:
            if action == "complete":
                self.queue.complete(token)
                self.completed += 1
            elif action == "abandon":
                self.queue.abandon(token)
            else:
                self.queue.dead_letter(token, "Test", "dead-lettered by the test")
        except ConflictError:
            assert until <= self.clock.now, "a live lock was refused"
        else:
            assert until > self.clock.now, "an expired lock was honoured"

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), action=st.sampled_from(["complete", "abandon", "dead_letter"]))
    def settle(self, data: st.DataObject, action: str) -> None:
        token = data.draw(st.sampled_from(list(self.held)))  # insertion order: reproducible
        self._settle(token, action)

    @rule(seconds=st.sampled_from([1.0, 6.0, 31.0, 60.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def nothing_is_lost_or_duplicated(self) -> None:
        dead = len(self.queue.dead_letters())
        assert self.queue.active_count() + dead + self.completed == self.accepted


QueueMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestQueueProperties = QueueMachine.TestCase
