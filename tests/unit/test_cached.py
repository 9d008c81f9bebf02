"""CachedRead (shared/cached.py): how often a hot path reads the state store."""

from __future__ import annotations

import threading

import pytest

from shared.cached import CachedRead


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Record:
    def __init__(self) -> None:
        self.value = "a"
        self.reads = 0

    def read(self) -> str:
        self.reads += 1
        return self.value


def test_a_value_is_read_once_per_period_and_a_change_is_seen_within_it() -> None:
    clock, record = Clock(), Record()
    cached = CachedRead(record.read, 5.0, clock=clock)
    assert [cached.get() for _ in range(10)] == ["a"] * 10
    record.value = "b"
    clock.now += 4.9
    assert cached.get() == "a"  # late, by less than the period
    clock.now += 0.1
    assert cached.get() == "b"
    assert record.reads == 2


def test_fresh_reads_now_and_restarts_the_period() -> None:
    clock, record = Clock(), Record()
    cached = CachedRead(record.read, 5.0, clock=clock)
    cached.get()
    record.value = "b"
    assert cached.get(fresh=True) == "b"
    clock.now += 4.0
    assert cached.get() == "b"
    assert record.reads == 2


def test_what_the_caller_wrote_is_not_read_back() -> None:
    clock, record = Clock(), Record()
    cached = CachedRead(record.read, 5.0, clock=clock)
    cached.put("mine")
    assert cached.get() == "mine"
    assert record.reads == 0
    clock.now += 5.0
    assert cached.get() == "a"


def test_a_failed_read_raises_and_the_next_call_reads_again() -> None:
    clock, record = Clock(), Record()
    failing = [True]

    def read() -> str:
        if failing[0]:
            raise OSError("store unreachable")
        return record.read()

    cached = CachedRead(read, 5.0, clock=clock)
    with pytest.raises(OSError, match="unreachable"):
        cached.get()
    failing[0] = False
    assert cached.get() == "a"


def test_threads_share_one_answer() -> None:
    clock, record = Clock(), Record()
    cached = CachedRead(record.read, 5.0, clock=clock)
    cached.get()
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(cached.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["a"] * 8
    assert record.reads == 1
