"""The backfill's share of Marketo's rate is taken from the live sync only while a job runs
(shared/backfill/share.py): the arithmetic, the reservation's timeline under a fake clock with
the real limiters and the real token bucket on a SQLite state store, and the container's worker
client against the simulators before, during and after a job."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdsync.harness import LocalSystem
from shared.adapters.sqlite_state import SqliteStateStore
from shared.backfill.job import Options, Status
from shared.backfill.share import HOLD, WINDOW, ShareGate, ShareView, live_calls
from shared.marketo.budget import BudgetedCallLimiter, StoredCallWindow
from shared.marketo.limiter import CallLimiter, RateShareSpentError
from tests.adapters.conftest import FakeClock
from tests.backfill.conftest import CREATED_FROM, World

# --- the arithmetic -------------------------------------------------------------------------------


@given(st.integers(3, 100), st.data())
def test_the_shares_add_up_to_the_limit_and_the_backfill_takes_only_while_reserved(
    total: int, data: st.DataObject
) -> None:
    flow = data.draw(st.integers(1, total - 2))
    backfill = data.draw(st.integers(1, total - flow - 1))  # the settings' own bound

    idle = live_calls(total, flow, backfill, reserved=False)
    busy = live_calls(total, flow, backfill, reserved=True)

    assert idle == total - flow  # no job: the live sync loses nothing to the backfill
    assert busy + flow + backfill == total  # a job: the three shares make the limit
    assert busy >= 1


# --- the timeline, with the real limiters on a fake clock -----------------------------------------

TOTAL, FLOW, BACKFILL = 80, 20, 10
LIVE = TOTAL - FLOW  # the most the live sync and the backfill may spend together per window


@contextmanager
def store(clock: FakeClock) -> Iterator[SqliteStateStore]:
    # A store per example (hypothesis and function fixtures do not mix): SQLite in a temp dir.
    with tempfile.TemporaryDirectory() as workdir:
        state = SqliteStateStore(Path(workdir) / "state.sqlite3", clock=clock)
        try:
            yield state
        finally:
            state.close()


def call(limiter: CallLimiter) -> bool:
    """One call if the limiter lets it go now (the caller does not wait)."""
    try:
        with limiter.slot(max_wait=0):
            return True
    except RateShareSpentError:
        return False


def windows_hold_at_most(calls: list[float], limit: int) -> bool:
    calls = sorted(calls)
    return all(sum(1 for t in calls[i:] if t < start + WINDOW) <= limit for i, start in enumerate(calls))


@settings(max_examples=30, deadline=None)
@given(
    start=st.floats(min_value=0.0, max_value=45.0),
    runs=st.floats(min_value=30.0, max_value=90.0),
    check=st.sampled_from([0.5, 2.0, 5.0]),
    shared_bucket=st.booleans(),
    step=st.sampled_from([0.1, 0.4, 1.3]),
)
def test_live_and_backfill_never_exceed_the_limit_even_when_a_job_starts_mid_window(
    start: float, runs: float, check: float, shared_bucket: bool, step: float
) -> None:
    """The worker spends its whole share greedily from t=0 (so a job always starts mid-window);
    the job calls as fast as its limiter allows from ``start`` for ``runs`` seconds, then ends."""
    clock = FakeClock(1_000_000.0)
    with store(clock) as state:
        view = ShareView(state, check_seconds=check, clock=clock)
        share = view.share(TOTAL, FLOW, BACKFILL)
        worker = (
            BudgetedCallLimiter(
                StoredCallWindow(state, "marketo", share, clock=clock),
                share,
                8,
                clock=clock,
                sleep=clock.advance,
            )
            if shared_bucket
            else CallLimiter(share, 8, clock=clock, sleep=clock.advance)
        )
        gate = ShareGate(state, check_seconds=check, clock=clock)
        job = BudgetedCallLimiter(gate, BACKFILL, 2, clock=clock, sleep=clock.advance)
        began = clock.now
        live: list[float] = []
        bulk: list[float] = []
        released = False
        while (t := clock.now - began) < start + runs + 60.0:
            # The real client waits in the limiter for the gate; here a refused try would spend
            # a stamp of the job's own limiter, so the job tries only once the gate is open.
            if start <= t < start + runs and gate.take() == 0.0:
                while call(job):
                    bulk.append(clock.now)
            elif t >= start + runs and not released:
                gate.release()  # the job ended
                released = True
            while call(worker):
                live.append(clock.now)
            clock.advance(step)

        assert windows_hold_at_most(live + bulk, LIVE)
        assert bulk, "the job made calls"
        assert not view.reserved()  # it ended: the share is the live sync's again
        assert worker.max_calls == LIVE


def test_a_job_waits_until_every_live_client_has_seen_its_reservation(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    state = SqliteStateStore(tmp_path / "state.sqlite3", clock=clock)
    view = ShareView(state, check_seconds=5.0, clock=clock)
    gate = ShareGate(state, check_seconds=5.0, clock=clock)
    assert not view.reserved()

    assert gate.take() == pytest.approx(5.0 + WINDOW + 1.0)  # reserved now, the call waits
    clock.advance(5.0)
    assert view.reserved()  # within a check, every live client sees it
    clock.advance(WINDOW + 1.0)
    assert gate.take() == 0.0
    state.close()


def test_a_job_nobody_advances_gives_the_share_back_by_itself(tmp_path: Path) -> None:
    """A `mdsync backfill` stopped with Ctrl-C, a killed runner, a paused job: no release, no
    more calls; the reservation runs out and the live sync has its whole share again."""
    clock = FakeClock(1_000_000.0)
    state = SqliteStateStore(tmp_path / "state.sqlite3", clock=clock)
    view = ShareView(state, check_seconds=5.0, clock=clock)
    gate = ShareGate(state, check_seconds=5.0, clock=clock)
    gate.take()
    clock.advance(30.0)
    assert gate.take() == 0.0  # the job calls for a while, extending its reservation
    for _ in range(10):
        clock.advance(20.0)
        assert gate.take() == 0.0
    assert view.reserved()

    clock.advance(HOLD + 5.0)  # then nobody calls any more

    assert not view.reserved()
    assert gate.take() > 0  # resumed later, it reserves again and waits for the live clients
    state.close()


# --- the container's clients against the simulators -----------------------------------------------


def test_the_worker_gives_the_backfill_its_share_only_while_a_job_runs(
    world: World, system: LocalSystem
) -> None:
    world.person("ana", email="ana@fabrikam.example", lastName="Lopez")
    world.record("ana", emailaddress1="ana@fabrikam.example", lastname="Lopez", jobtitle="CTO")
    s = system.deps.settings
    worker = system.deps.marketo  # the worker's and the poller's client, as the app builds it
    bucket = worker.limiter.budget if isinstance(worker.limiter, BudgetedCallLimiter) else None
    idle = s.marketo_max_calls_per_20s - s.marketo_flow_step_calls_per_20s
    busy = idle - s.marketo_backfill_calls_per_20s
    assert worker.max_calls_per_20s == idle  # no job ever ran: nothing is kept from the live sync

    backfill = system.deps.backfill_command(owner="share-test")
    backfill.start(Options(created_from=CREATED_FROM), restart=True)
    seen: dict[str, int] = {}

    def note(job: object) -> None:
        # Each saved unit of the running job: once it has called Marketo, its share is held.
        if backfill.ctx.marketo.calls.total and "during" not in seen:
            assert system.until(lambda: worker.max_calls_per_20s == busy, timeout=30)
            seen["during"] = worker.max_calls_per_20s
            if isinstance(bucket, StoredCallWindow):
                seen["bucket"] = bucket.calls_per_window

    try:
        job = backfill.run(on_progress=note)
    finally:
        backfill.ctx.close()

    assert job.status is Status.DONE, job.error
    assert seen["during"] == busy
    if bucket is not None:
        assert seen["bucket"] == busy  # every instance's shared bucket shrinks alike
    assert system.until(lambda: worker.max_calls_per_20s == idle, timeout=30)  # given back at the end
    assert world.linked("ana", "ana")
