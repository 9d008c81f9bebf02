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
from shared.errors import ServiceUnavailableError
from shared.marketo.budget import MARGIN, WINDOW, StoredCallWindow
from shared.ports import StateStore
from tests.adapters.conftest import FakeClock
from tests.adapters.test_state_contract import race

StoreFactory = Callable[[], StateStore]
CALLS = 95  # per 20 s: the worker's share with Marketo's whole rate


def buckets(make_store: StoreFactory, clock: FakeClock, count: int) -> list[StoredCallWindow]:
    return [StoredCallWindow(make_store(), "marketo", CALLS, clock=clock) for _ in range(count)]


def answered(window: StoredCallWindow) -> Callable[[], float]:
    """A take as a caller makes it: a store too busy to answer (``ServiceUnavailableError``, a
    transient fault: SQLite's write lock still held when its busy timeout ran out) is asked
    again. 120 takes at once on one SQLite file queue for its one write lock, and on a loaded
    machine one may wait longer than the timeout; whether it does is the machine's timing, not
    the budget's rule, which is what this test is about."""

    def take() -> float:
        while True:
            try:
                return window.take()
            except ServiceUnavailableError:
                continue

    return take


def test_instances_racing_for_calls_get_the_share_between_them_and_no_more(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    instances = buckets(make_store, clock, 4)
    waits = race([answered(b) for b in instances for _ in range(30)])

    granted = sum(1 for w in waits if w == 0.0)
    assert all(isinstance(w, float) and w > 0 for w in waits if w != 0.0), waits
    assert granted <= CALLS
    # A take that lost the race too often says "wait" although room is left; asked again, the
    # room is there, and the window ends up holding exactly the share.
    while instances[0].take() == 0.0:
        granted += 1
    assert granted == CALLS


def test_a_call_leaves_the_window_a_window_and_the_margin_after_it_was_taken(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    instances = buckets(make_store, clock, 4)
    taken: list[float] = []
    for _ in range(600):  # 60 s in steps of 0.1 s, every instance asking each step
        for window in instances:
            while window.take() == 0.0:
                taken.append(clock.now)
        clock.advance(0.1)
    span = WINDOW + MARGIN
    assert len(taken) == CALLS * 3  # three spans of 20.5 s began within the 60 s
    for i, start in enumerate(taken):
        assert sum(1 for t in taken[i:] if t < start + span) <= CALLS
    # Each call after the first window's waited for the one a whole share before it to leave.
    assert all(later - earlier >= span - 0.1 for earlier, later in zip(taken, taken[CALLS:], strict=False))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=60))
def test_no_twenty_seconds_ever_hold_more_than_the_budget(gaps: list[float]) -> None:
    # A store per example (hypothesis and function fixtures do not mix): SQLite in a temp dir.
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as workdir:
        store = SqliteStateStore(Path(workdir) / "state.sqlite3", clock=clock)
        try:
            window = StoredCallWindow(store, "marketo", 10, clock=clock)
            calls: list[float] = []
            for gap in gaps:
                clock.advance(gap)
                while window.take() == 0.0:
                    calls.append(clock.now)
            for i, start in enumerate(calls):
                assert sum(1 for t in calls[i:] if t < start + 20.0) <= 10
        finally:
            store.close()


@pytest.mark.parametrize("calls", [1, 2, 3])
def test_a_tiny_share_still_grants_whole_calls(
    make_store: StoreFactory, clock: FakeClock, calls: int
) -> None:
    window = StoredCallWindow(make_store(), "tiny", calls, clock=clock)
    assert window.take() == 0.0
    granted = 1
    for _ in range(400):
        clock.advance(0.1)
        granted += window.take() == 0.0
    assert granted == calls * 2  # 40 s: two spans of 20.5 s began, each its whole share
