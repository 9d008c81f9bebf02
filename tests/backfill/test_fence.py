"""The fence between the live worker's writes and the backfill's (shared/backfill/fence.py), on
the SQLite state store: whichever of a claim and a range comes second sees the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.backfill.fence import BEAT_SECONDS, CLAIM_SECONDS, STOPPED_SECONDS, Fence
from shared.backfill.staging import BUCKETS, person_bucket, record_bucket, record_key
from tests.adapters.conftest import FakeClock

LEAD = ("lead", "6f1c1e0a-0000-4000-8000-000000000001")
PERSON = 1001


@pytest.fixture
def fence(tmp_path: Path) -> Fence:
    clock = FakeClock(1_000_000.0)
    return Fence(SqliteStateStore(tmp_path / "state.sqlite3", clock=clock), clock=clock)


def test_without_a_job_the_live_worker_claims_nothing(fence: Fence) -> None:
    claimed = fence.claim([(*LEAD, PERSON)])
    assert claimed.name is None
    assert not claimed.busy
    assert fence.state.get_checkpoint("backfill/fence") is None  # one read, no write


def test_a_claim_made_first_is_seen_by_the_range_and_the_range_does_not_stop_it(fence: Fence) -> None:
    fence.put_up("job-1")
    claimed = fence.claim([(*LEAD, PERSON)])
    assert claimed.name is not None
    assert not claimed.busy

    records, persons = fence.enter("mw:0", "mw", 0, BUCKETS - 1)

    assert record_key(*LEAD) in records
    assert PERSON in persons


def test_a_range_entered_first_puts_back_the_live_pairs_in_it_and_only_those(fence: Fence) -> None:
    fence.put_up("job-1")
    bucket = person_bucket(PERSON)
    fence.enter("dw:3", "dw", bucket, bucket)
    elsewhere = ("contact", "6f1c1e0a-0000-4000-8000-00000000abcd")
    other = next(m for m in range(2000, 9000) if person_bucket(m) != bucket)
    assert record_bucket(*elsewhere) != bucket

    claimed = fence.claim([(*LEAD, PERSON), (*elsewhere, other)])

    assert claimed.busy == {LEAD}
    fence.leave("dw:3")
    assert not fence.claim([(*LEAD, PERSON)]).busy  # the range has landed: the retry writes


def test_a_released_or_expired_claim_is_no_longer_held_and_the_fence_comes_down(fence: Fence) -> None:
    fence.put_up("job-1")
    first = fence.claim([(*LEAD, PERSON)])
    assert first.name is not None
    fence.release(first.name)
    assert fence.enter("mw:0", "mw", 0, BUCKETS - 1) == (set(), set())

    fence.claim([(*LEAD, PERSON)])  # a batch that died before releasing
    clock = fence._clock
    assert isinstance(clock, FakeClock)
    clock.advance(CLAIM_SECONDS + 1)
    assert fence.enter("mw:1", "mw", 0, BUCKETS - 1) == (set(), set())

    fence.take_down()
    assert not fence.current().up
    assert fence.claim([(*LEAD, PERSON)]).name is None


def _clock(fence: Fence) -> FakeClock:
    clock = fence._clock
    assert isinstance(clock, FakeClock)
    return clock


def test_a_job_that_stopped_without_ending_lets_the_fence_lapse(fence: Fence) -> None:
    fence.put_up("job-1")
    _clock(fence).advance(STOPPED_SECONDS + 1)  # its runner was killed; nobody resumed it

    before = fence.state.get_checkpoint("backfill/fence")
    claimed = fence.claim([(*LEAD, PERSON)])

    assert claimed.name is None  # live batches stop claiming: no conditional writes forever
    assert fence.state.get_checkpoint("backfill/fence") == before


def test_a_running_job_keeps_its_fence_up_with_a_beat_a_minute_at_most(fence: Fence) -> None:
    since = fence.put_up("job-1")
    writes = 0
    for _ in range(int(2 * STOPPED_SECONDS / 30)):  # a step every 30 s for an hour
        _clock(fence).advance(30)
        before = fence.state.get_checkpoint("backfill/fence")
        assert fence.put_up("job-1") == since
        writes += fence.state.get_checkpoint("backfill/fence") != before

    assert fence.claim([(*LEAD, PERSON)]).name is not None
    assert writes <= 2 * STOPPED_SECONDS / BEAT_SECONDS


def test_an_import_range_being_collected_keeps_the_fence_up(fence: Fence) -> None:
    fence.put_up("job-1")
    for _ in range(3):
        _clock(fence).advance(STOPPED_SECONDS / 2)
        fence.enter("mw:0", "mw", 0, BUCKETS - 1)  # re-entered each time the import is polled

    assert fence.claim([(*LEAD, PERSON)]).name is not None


def test_a_job_back_at_a_lapsed_fence_puts_it_up_anew_and_settles_again(fence: Fence) -> None:
    first = fence.put_up("job-1")
    fence.claim([(*LEAD, PERSON)])
    _clock(fence).advance(STOPPED_SECONDS + 1)

    again = fence.put_up("job-1")

    assert again == _clock(fence)()  # the next range waits for live batches begun meanwhile
    assert again > first
    assert fence.current().claims == {}
    assert fence.claim([(*LEAD, PERSON)]).name is not None
