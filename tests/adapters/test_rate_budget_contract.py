"""The shared Marketo budget (shared/marketo/budget.py) on every state store: SQLite and Table
Storage on Azurite. Several stores over one backing store are several instances' views of it;
the clock is fake, so refills are tested by moving it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.sqlite_state import SqliteStateStore
from shared.marketo.budget import StoredTokenBucket
from shared.ports import StateStore
from tests.adapters.conftest import FakeClock
from tests.adapters.test_state_contract import race

StoreFactory = Callable[[], StateStore]
CALLS = 95  # per 20 s: the worker's share with Marketo's whole rate


def buckets(make_store: StoreFactory, clock: FakeClock, count: int) -> list[StoredTokenBucket]:
    return [StoredTokenBucket(make_store(), "marketo", CALLS, clock=clock) for _ in range(count)]


def test_instances_racing_for_tokens_get_the_burst_between_them(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    instances = buckets(make_store, clock, 4)
    waits = race([b.take for b in instances for _ in range(2)])

    granted = [w for w in waits if w == 0.0]
    assert len(granted) == 2  # the burst, whoever got it
    assert all(isinstance(w, float) and w > 0 for w in waits if w != 0.0)


def test_tokens_come_back_at_the_rate_that_fills_the_window_and_no_more(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    instances = buckets(make_store, clock, 4)
    taken = 0
    for _ in range(200):  # 20 s in steps of 0.1 s, every instance asking each step
        for bucket in instances:
            while bucket.take() == 0.0:
                taken += 1
        clock.advance(0.1)
    assert CALLS - 3 <= taken <= CALLS  # burst 2 + 93 per 20 s, less what the last step's refill lacks


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=60))
def test_no_twenty_seconds_ever_hold_more_than_the_budget(gaps: list[float]) -> None:
    # A store per example (hypothesis and function fixtures do not mix): SQLite in a temp dir.
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as workdir:
        store = SqliteStateStore(Path(workdir) / "state.sqlite3", clock=clock)
        try:
            bucket = StoredTokenBucket(store, "marketo", 10, clock=clock)
            calls: list[float] = []
            for gap in gaps:
                clock.advance(gap)
                while bucket.take() == 0.0:
                    calls.append(clock.now)
            for i, start in enumerate(calls):
                assert sum(1 for t in calls[i:] if t < start + 20.0) <= 10
        finally:
            store.close()


@pytest.mark.parametrize("calls", [1, 2, 3])
def test_a_tiny_share_still_grants_whole_calls(
    make_store: StoreFactory, clock: FakeClock, calls: int
) -> None:
    bucket = StoredTokenBucket(make_store(), "tiny", calls, clock=clock)
    assert bucket.take() == 0.0
    granted = 1
    for _ in range(400):
        clock.advance(0.1)
        granted += bucket.take() == 0.0
    assert granted <= calls * 2 + 1  # 40 s: at most two windows' worth, plus the burst
