"""The capture lease: short, renewed while a run goes on, taken back at once from a process of this
host that is gone. The store's clock is fake; the heartbeat is waited on by its count, never by
sleeping a fixed time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.capture.lease import Lease, Owner, holder_is_gone, this_host
from tests.adapters.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(tmp_path: Path, clock: FakeClock) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state.sqlite3", clock=clock)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=60)
    return process.pid


def test_a_holder_is_gone_only_when_its_process_on_this_host_has_ended() -> None:
    assert holder_is_gone(str(Owner(this_host(), _dead_pid(), "x")))
    assert not holder_is_gone(str(Owner(this_host(), os.getppid(), "x")))  # alive
    assert not holder_is_gone(str(Owner(this_host(), os.getpid(), "x")))  # this very process
    assert not holder_is_gone(str(Owner("another-instance", _dead_pid(), "x")))  # cannot tell
    assert not holder_is_gone("0123456789abcdef")  # an owner written by older code


def test_a_lease_of_a_gone_process_is_taken_over_at_once(state: SqliteStateStore) -> None:
    crashed = str(Owner(this_host(), _dead_pid(), "crashed"))
    assert state.acquire_lease("sweep", crashed, 30)
    with Lease(state, "sweep") as lease:
        assert lease.held
        assert state.get_lease("sweep").owner == lease.owner  # type: ignore[union-attr]
    assert state.get_lease("sweep") is None


def test_a_live_holder_keeps_its_lease(state: SqliteStateStore) -> None:
    with Lease(state, "sweep") as first, Lease(state, "sweep") as second:
        assert first.held
        assert not second.held
    assert state.get_lease("sweep") is None


def test_renewal_keeps_a_long_run_holding_it(state: SqliteStateStore, clock: FakeClock) -> None:
    lease = Lease(state, "poll", seconds=30, renew_every=3600)  # renewed by hand here
    with lease:
        for _ in range(5):
            clock.advance(20)
            assert lease.renew()
        assert not state.acquire_lease("poll", "another run", 30)
    assert state.acquire_lease("poll", "another run", 30)


def test_the_heartbeat_renews_in_the_background(state: SqliteStateStore) -> None:
    with Lease(state, "poll", seconds=30, renew_every=0.01) as lease:
        deadline = time.monotonic() + 30
        while lease.renewals < 3:
            assert time.monotonic() < deadline, "the heartbeat never renewed"
            time.sleep(0.01)


def test_a_lease_taken_by_another_run_is_known_lost(state: SqliteStateStore, clock: FakeClock) -> None:
    with Lease(state, "poll", seconds=30, renew_every=3600) as lease:
        clock.advance(31)
        assert state.acquire_lease("poll", "another run", 30)
        assert not lease.renew()
        assert lease.lost.is_set()
    assert state.get_lease("poll").owner == "another run"  # type: ignore[union-attr]
