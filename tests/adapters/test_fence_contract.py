"""The backfill's fence (shared/backfill/fence.py) on every state store, raced for real: a live
batch's claim and a backfill range entered at the same moment from two processes' views of one
store. Whatever the order the store settles on, at least one of them sees the other, so the
record is either held by the backfill or put back by the worker, never written by both."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.backfill.fence import Fence
from shared.backfill.staging import BUCKETS, record_key
from shared.ports import Claimed, StateStore
from tests.adapters.conftest import FakeClock
from tests.adapters.test_state_contract import race

LEAD = ("lead", "6f1c1e0a-0000-4000-8000-000000000001")
PERSON = 1001


@pytest.mark.parametrize("attempt", range(5))
def test_a_claim_and_a_range_at_the_same_moment_always_see_each_other_at_least_once(
    make_store: Callable[[], StateStore], clock: FakeClock, attempt: int
) -> None:
    backfill, worker = Fence(make_store(), clock=clock), Fence(make_store(), clock=clock)
    backfill.put_up(f"job-{attempt}")

    claimed, entered = race(
        [
            lambda: worker.claim([(*LEAD, PERSON)]),
            lambda: backfill.enter("dw:0", "dw", 0, BUCKETS - 1),
        ]
    )

    assert isinstance(claimed, Claimed), claimed
    assert isinstance(entered, tuple), entered
    worker_waits = LEAD in claimed.busy
    backfill_holds = record_key(*LEAD) in entered[0] and PERSON in entered[1]
    assert worker_waits or backfill_holds
    stored = backfill.current()
    assert "dw:0" in stored.ranges  # neither write was lost to the other
    assert claimed.name in stored.claims
