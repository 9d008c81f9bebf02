"""The batching window (shared/sync/pacer.py): a small batch waits for company when the day's
Marketo spend says so, and nothing is lost or held back twice."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mdsync.harness import LocalSystem
from shared.adapters.sqlite_operations import SqliteOperationsStore
from shared.adapters.sqlite_queue import SqliteQueue
from shared.console import tallies as t
from shared.errors import ServiceUnavailableError
from shared.notices import Entity, Kind, Notice, Source
from shared.pacing import PacingPolicy
from shared.ports import Tally
from shared.sync.pacer import Pacer
from tests.adapters.conftest import FakeClock
from tests.e2e.test_worker_support import create_linked, person, update_as_user

# 2,000 calls a day, 1,900 spent: every small batch waits, for at most 4 s.
TIGHT = PacingPolicy(2_000.0, reserve=1_000.0, max_window=4.0)


def notices(n: int, source: Source = Source.DYNAMICS) -> list[Notice]:
    now = datetime.now(UTC)
    return [
        Notice(source=source, entity=Entity.LEAD, record_id=f"lead-{i}", kind=Kind.UPDATED, occurred_at=now)
        for i in range(n)
    ]


class Parts:
    def __init__(self, tmp_path: Path, spent: int) -> None:
        self.clock = FakeClock()
        self.queue = SqliteQueue(tmp_path / "queue.sqlite3", clock=self.clock)
        self.operations = SqliteOperationsStore(tmp_path / "state.sqlite3")
        moment = datetime.fromtimestamp(self.clock.now, UTC)
        self.operations.add_tallies([Tally(moment, t.NONE, t.NONE, t.MARKETO_CALLS, spent)])
        self.pacer = Pacer(TIGHT, self.operations, self.queue, clock=self.clock)

    def visible(self) -> list[Notice]:
        received = self.queue.receive(1000)
        for message in received:
            self.queue.complete(message.lock_token)
        return [Notice.from_json(m.body) for m in received]


def test_a_small_batch_comes_back_whole_at_the_windows_boundary_and_is_then_processed(tmp_path: Path) -> None:
    parts = Parts(tmp_path, spent=1_900)
    batch = notices(3)
    assert parts.pacer.hold_back(batch) == 3
    assert parts.visible() == []  # not before the boundary
    parts.clock.now = (int(parts.clock.now) // 4 + 1) * 4
    back = parts.visible()
    assert sorted(n.record_id for n in back) == ["lead-0", "lead-1", "lead-2"]
    assert all(n.paced and n.dedup_id.endswith("-w") for n in back)
    # a notice waits once: the batch it comes back in is processed, whatever the spend
    assert parts.pacer.hold_back(back + notices(1)) == 0
    assert parts.visible() == []


def test_a_batch_deferred_twice_is_queued_once(tmp_path: Path) -> None:
    """The invocation failed after its copies were queued: the redelivered batch is deferred
    again, and the queue's duplicate detection drops the second copies."""
    parts = Parts(tmp_path, spent=1_900)
    batch = notices(2)
    assert parts.pacer.hold_back(batch) == 2
    assert parts.pacer.hold_back(batch) == 2
    parts.clock.now += 10
    assert len(parts.visible()) == 2


@pytest.mark.parametrize(
    ("spent", "size", "source"),
    [
        (10, 5, Source.DYNAMICS),  # ample quota
        (1_900, 300, Source.DYNAMICS),  # a full batch is at the floor already
        (1_900, 1, Source.OPERATOR),  # an operator's re-sync has someone waiting
    ],
)
def test_these_batches_are_processed_at_once(tmp_path: Path, spent: int, size: int, source: Source) -> None:
    parts = Parts(tmp_path, spent=spent)
    assert parts.pacer.hold_back(notices(size, source)) == 0
    parts.clock.now += 600
    assert parts.visible() == []


class RefusingQueue(SqliteQueue):
    def schedule(self, notices: Sequence[Notice], at: datetime) -> None:
        raise ServiceUnavailableError("the queue is away", service="queue")


def test_when_the_queue_refuses_the_copies_the_batch_is_not_completed(tmp_path: Path) -> None:
    parts = Parts(tmp_path, spent=1_900)
    pacer = Pacer(TIGHT, parts.operations, RefusingQueue(tmp_path / "q.sqlite3"), clock=parts.clock)
    with pytest.raises(ServiceUnavailableError):
        pacer.hold_back(notices(2))


class UnreadableTallies(SqliteOperationsStore):
    def read_tallies(self, since: datetime) -> list[Tally]:
        raise ServiceUnavailableError("the state store is away", service="state")


def test_when_the_days_spend_cannot_be_read_the_batch_is_processed(tmp_path: Path) -> None:
    parts = Parts(tmp_path, spent=1_900)
    pacer = Pacer(TIGHT, UnreadableTallies(tmp_path / "state.sqlite3"), parts.queue, clock=parts.clock)
    assert pacer.hold_back(notices(2)) == 0


def test_through_the_worker_a_change_waits_for_the_window_and_lands(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    tight = {
        "MDSYNC_BATCH_WINDOW": "true",
        "MDSYNC_MARKETO_DAILY_BUDGET": "2000",
        "MDSYNC_BATCH_WINDOW_MAX_SECONDS": "4",
    }
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Buyer")
    now = datetime.now(UTC)
    spent = Tally(now, t.NONE, t.NONE, t.MARKETO_CALLS, 1_900)
    system.deps.operations.add_tallies([spent])
    try:
        with system.settings_changed(tight), caplog.at_level(logging.INFO, logger="shared.sync.pacer"):
            update_as_user(system, "lead", lead_id, jobtitle="Chief Buyer")
            system.wait_idle()
            assert person(system, marketo_id)["title"] == "Chief Buyer"
            # the console's API budgets show the window a small batch waits for now
            assert system.deps.status_reader.read().budgets.batching_window_seconds == 4
    finally:
        # The session's system is shared: later tests get the day's spend as it was.
        system.deps.operations.add_tallies([Tally(now, t.NONE, t.NONE, t.MARKETO_CALLS, -1_900)])
    assert any("waits for the 4 s batching window" in r.getMessage() for r in caplog.records)
    assert system.deps.status_reader.read().budgets.batching_window_seconds is None  # off in the harness
