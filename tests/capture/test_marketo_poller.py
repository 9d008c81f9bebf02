"""The marketo_poller function and the MarketoPoller behind it, against the Marketo simulator.

The checkpoint discipline is observed through subclasses of the real SQLite adapters: a state
store that counts (or fails) its checkpoint writes, and a queue that records what was sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from functions.marketo_poller import marketo_poller
from shared.adapters.sqlite_queue import SqliteQueue
from shared.adapters.sqlite_state import SqliteStateStore
from shared.capture.marketo_poll import CHECKPOINT, LEASE, MarketoPoller
from shared.errors import ServiceUnavailableError
from shared.notices import FieldChange, Kind

from .conftest import App, CountingState, RecordingQueue, timer, utc_now

CHANGES = "GET /rest/v1/activities/leadchanges.json"
DELETED = "GET /rest/v1/activities/deletedleads.json"
MERGES = "GET /rest/v1/activities.json"


def seed(app: App, count: int) -> list[int]:
    """Persons that exist before the poller starts (seeded silently: no activities)."""
    return app.stack.marketo.state.seed(
        [{"email": f"person{i}@example.com", "firstName": f"P{i}"} for i in range(count)]
    )


def edit_all(app: App, ids: Sequence[int]) -> dict[str, str]:
    titles = {}
    for i, lead_id in enumerate(ids):
        titles[str(lead_id)] = f"Title {i}"
        app.stack.marketo.state.user_edit(lead_id, {"title": titles[str(lead_id)]})
    return titles


def poller(app: App, state: SqliteStateStore, queue: SqliteQueue, **options: object) -> MarketoPoller:
    return MarketoPoller(app.deps.marketo, state, queue, app.deps.mapping, **options)  # type: ignore[arg-type]


def test_a_thousand_changes_over_several_pages_are_queued_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    ids = seed(app, 1000)
    marketo_poller(timer())  # the first run only records where to start
    assert app.queued() == []
    started = app.deps.state.get_checkpoint(CHECKPOINT)
    assert started is not None
    titles = edit_all(app, ids)
    calls = app.deps.marketo.calls.snapshot()

    with caplog.at_level(logging.INFO, logger="functions.marketo_poller"):
        marketo_poller(timer())

    notices = app.notices()
    assert sorted(int(n.record_id) for n in notices) == sorted(ids)
    assert len({n.dedup_id for n in notices}) == 1000
    for notice in notices:
        assert notice.kind is Kind.UPDATED
        assert notice.changes == {"title": FieldChange(old=None, new=titles[notice.record_id])}
        assert not notice.own_write  # a user's edit
    read = app.deps.marketo.calls.snapshot()
    assert read[CHANGES] - calls.get(CHANGES, 0) == 4  # 300 + 300 + 300 + 100
    assert read[DELETED] - calls.get(DELETED, 0) == 1
    assert read[MERGES] - calls.get(MERGES, 0) == 1
    moved = app.deps.state.get_checkpoint(CHECKPOINT)
    assert moved is not None
    assert moved.etag != started.etag
    assert "1000 notices from 1000 activities in 6 pages" in caplog.text

    marketo_poller(timer())  # nothing new since
    assert app.queued() == []


def test_the_checkpoint_is_written_once_per_run_and_a_budget_splits_the_work(
    app: App, tmp_path: Path
) -> None:
    state, queue = CountingState(tmp_path / "state.sqlite3"), RecordingQueue(tmp_path / "queue.sqlite3")
    ids = seed(app, 1000)
    run = poller(app, state, queue, max_pages=3)
    run.run()
    assert state.writes == 1  # the first run creates it
    edit_all(app, ids)

    first = run.run()
    assert (first.pages, first.notices, first.drained) == (3, 300, False)  # changes, merges, deletions
    assert state.writes == 2
    for _ in range(3):
        run.run()
    assert state.writes == 5
    last = run.run()
    assert (last.notices, last.drained) == (0, True)

    assert len(queue.sent) == len(set(queue.sent)) == 1000
    assert sorted(int(n.record_id) for n in queue.drain()) == sorted(ids)


def test_a_crash_between_queueing_and_checkpointing_loses_nothing(app: App, tmp_path: Path) -> None:
    state, queue = CountingState(tmp_path / "state.sqlite3"), RecordingQueue(tmp_path / "queue.sqlite3")
    ids = seed(app, 450)
    run = poller(app, state, queue)
    run.run()
    before = state.get_checkpoint(CHECKPOINT)
    edit_all(app, ids)
    state.crashes = 1

    with pytest.raises(RuntimeError):
        run.run()

    assert state.get_checkpoint(CHECKPOINT) == before  # not moved
    crashed = list(queue.sent)
    assert len(crashed) == 450
    assert queue.active_count() == 450
    assert state.acquire_lease(LEASE, "someone else", 1)  # the crashed run let go of its lease
    state.release_lease(LEASE, "someone else")

    queue.sent.clear()
    rerun = run.run()
    assert queue.sent == crashed  # the same pages, the same dedup ids
    assert queue.active_count() == 450  # which the queue dropped as duplicates
    assert rerun.notices == 450
    assert state.get_checkpoint(CHECKPOINT) != before

    queue.sent.clear()
    assert run.run().notices == 0
    assert queue.sent == []
    assert sorted(int(n.record_id) for n in queue.drain()) == sorted(ids)


def test_a_run_that_fails_midway_leaves_the_checkpoint_and_the_next_run_resumes(
    app: App, tmp_path: Path
) -> None:
    state = CountingState(tmp_path / "state.sqlite3")
    queue = RecordingQueue(tmp_path / "queue.sqlite3", fail_on_send=2)
    ids = seed(app, 700)
    run = poller(app, state, queue)
    run.run()
    before = state.get_checkpoint(CHECKPOINT)
    edit_all(app, ids)

    with pytest.raises(ServiceUnavailableError):
        run.run()  # page 1 queued, page 2 could not be
    assert state.get_checkpoint(CHECKPOINT) == before
    assert queue.active_count() == 300

    assert run.run().notices == 700
    assert queue.active_count() == 700
    assert sorted(int(n.record_id) for n in queue.drain()) == sorted(ids)


def test_a_marketo_fault_defers_the_run_and_keeps_the_checkpoint(app: App) -> None:
    [lead_id] = seed(app, 1)
    marketo_poller(timer())
    before = app.deps.state.get_checkpoint(CHECKPOINT)
    app.stack.marketo.state.user_edit(lead_id, {"title": "CTO"})
    app.stack.marketo.state.inject_fault("607", 1)  # daily quota spent

    marketo_poller(timer())  # logs and returns: the timer is not failed

    assert app.deps.state.get_checkpoint(CHECKPOINT) == before
    assert app.queued() == []
    marketo_poller(timer())
    [notice] = app.notices()
    assert notice.changes == {"title": FieldChange(old=None, new="CTO")}


def test_an_overlapping_run_does_nothing(app: App, tmp_path: Path) -> None:
    state, queue = CountingState(tmp_path / "state.sqlite3"), RecordingQueue(tmp_path / "queue.sqlite3")
    [lead_id] = seed(app, 1)
    run = poller(app, state, queue)
    run.run()
    app.stack.marketo.state.user_edit(lead_id, {"title": "CTO"})
    assert state.acquire_lease(LEASE, "the run in progress", 300)
    calls = app.deps.marketo.calls.total

    result = run.run()

    assert result.skipped == "another poll run holds the lease"
    assert app.deps.marketo.calls.total == calls
    assert (state.writes, queue.sends) == (1, 0)
    state.release_lease(LEASE, "the run in progress")
    assert run.run().notices == 1


def test_the_first_run_starts_now_unless_told_where(app: App, tmp_path: Path) -> None:
    [lead_id] = seed(app, 1)
    start = utc_now() - timedelta(seconds=5)
    app.stack.marketo.state.user_edit(lead_id, {"title": "before the first run"})

    now_queue = RecordingQueue(tmp_path / "now.sqlite3")
    from_now = poller(app, CountingState(tmp_path / "now-state.sqlite3"), now_queue).run()
    assert (from_now.notices, now_queue.sent) == (0, [])

    told_queue = RecordingQueue(tmp_path / "told.sqlite3")
    told = poller(app, CountingState(tmp_path / "told-state.sqlite3"), told_queue, start_at=start).run()
    assert told.notices == 1
    [notice] = told_queue.drain()
    assert notice.changes == {"title": FieldChange(old=None, new="before the first run")}


def test_new_deleted_and_own_changes(app: App) -> None:
    [kept, gone] = seed(app, 2)
    marketo_poller(timer())
    created = app.stack.marketo.state.user_create({"email": "new@example.com", "firstName": "Nia"})
    app.stack.marketo.state.user_edit(kept, {"title": "CTO"})
    app.stack.marketo.state.user_edit(kept, {"title": "CEO", "firstName": "Kim"})
    app.stack.marketo.state.user_edit(gone, {"unsubscribed": True})  # not a mapped field
    app.stack.marketo.state.user_delete(gone)
    [pushed] = app.deps.marketo.push_leads(
        [{"id": kept, "city": "Lyon"}], action="updateOnly", lookup_field="id"
    )
    assert pushed.id == kept

    marketo_poller(timer())

    queued = app.notices()
    notices = {(n.record_id, n.kind, n.own_write): n for n in queued}
    assert len(queued) == len(notices) == 4
    assert set(notices) == {
        (str(created), Kind.CREATED, False),
        (str(kept), Kind.UPDATED, False),
        (str(kept), Kind.UPDATED, True),
        (str(gone), Kind.DELETED, False),
    }
    # One notice per person per page and per writer: first old value, last new value; the API
    # write among the user's edits has a notice of its own, whose old value is what the field
    # held just before it.
    edited = notices[str(kept), Kind.UPDATED, False]
    assert edited.changes == {
        "title": FieldChange(old=None, new="CEO"),
        "firstName": FieldChange(old="P0", new="Kim"),
    }
    api = notices[str(kept), Kind.UPDATED, True]
    assert api.changes == {"city": FieldChange(old=None, new="Lyon")}
    # New Lead carries no field values: the worker reads the person.
    assert notices[str(created), Kind.CREATED, False].changes == {}

    app.deps.marketo.push_leads([{"id": kept, "city": "Paris"}], action="updateOnly", lookup_field="id")
    marketo_poller(timer())
    [echo] = app.notices()
    assert echo.own_write  # every activity came through the REST API: a hint only
    assert echo.actor == "Web service API"
    assert echo.changes == {"city": FieldChange(old="Lyon", new="Paris")}


def test_deletions_are_read_at_most_every_deletes_interval(app: App, tmp_path: Path) -> None:
    [kept, gone] = seed(app, 2)
    state = CountingState(tmp_path / "state.sqlite3")
    queue = RecordingQueue(tmp_path / "queue.sqlite3")
    every = timedelta(minutes=5)

    def run_at(at: datetime) -> dict[str, int]:
        before = app.deps.marketo.calls.snapshot()
        poller(app, state, queue, deletes_every=every).run(now=at)  # a new poller each run, as the timer
        after = app.deps.marketo.calls.snapshot()
        return {k: after[k] - before.get(k, 0) for k in (CHANGES, DELETED, MERGES) if k in after}

    start = utc_now()
    run_at(start)  # the first run only records where to start
    assert run_at(start + timedelta(minutes=1)) == {CHANGES: 1, DELETED: 1, MERGES: 1}  # never read yet
    app.stack.marketo.state.user_delete(gone)
    app.stack.marketo.state.user_edit(kept, {"title": "still polled"})

    assert run_at(start + timedelta(minutes=2)) == {CHANGES: 1, DELETED: 0, MERGES: 0}
    assert [(n.record_id, n.kind) for n in queue.drain()] == [(str(kept), Kind.UPDATED)]

    # Five minutes on; a deletion of a person not known merged away reads the merges on first.
    assert run_at(start + timedelta(minutes=6)) == {CHANGES: 1, DELETED: 1, MERGES: 2}
    assert [(n.record_id, n.kind) for n in queue.drain()] == [(str(gone), Kind.DELETED)]


def test_a_checkpoint_from_before_the_deletes_interval_reads_deletions_next(app: App, tmp_path: Path) -> None:
    [gone] = seed(app, 1)
    state = CountingState(tmp_path / "state.sqlite3")
    queue = RecordingQueue(tmp_path / "queue.sqlite3")
    every = timedelta(minutes=5)
    poller(app, state, queue, deletes_every=every).run()
    checkpoint = state.get_checkpoint(CHECKPOINT)
    assert checkpoint is not None
    tokens = json.loads(checkpoint.value)
    state.put_checkpoint(
        CHECKPOINT,
        json.dumps({"changes": tokens["changes"], "deleted": tokens["deleted"]}),
        etag=checkpoint.etag,
    )
    app.stack.marketo.state.user_delete(gone)

    poller(app, state, queue, deletes_every=every).run()

    assert [(n.record_id, n.kind) for n in queue.drain()] == [(str(gone), Kind.DELETED)]


def test_a_merge_becomes_a_merged_notice_per_loser_not_a_deletion(app: App) -> None:
    [winner, loser, other] = seed(app, 3)
    marketo_poller(timer())
    app.stack.marketo.state.user_merge(winner, [loser, other])

    marketo_poller(timer())

    notices = sorted(app.notices(), key=lambda n: int(n.record_id))
    assert [(n.record_id, n.kind, n.merged_into) for n in notices] == [
        (str(loser), Kind.MERGED, str(winner)),
        (str(other), Kind.MERGED, str(winner)),
    ]
    # Get Deleted Leads also reported the losers (the simulator does): not queued as deletions.
    assert len({n.dedup_id for n in notices}) == 2


def test_a_checkpoint_from_before_merges_were_read_starts_their_feed_where_deletions_were_read(
    app: App, tmp_path: Path
) -> None:
    [winner, loser] = seed(app, 2)
    state = CountingState(tmp_path / "state.sqlite3")
    queue = RecordingQueue(tmp_path / "queue.sqlite3")
    poller(app, state, queue).run()
    checkpoint = state.get_checkpoint(CHECKPOINT)
    assert checkpoint is not None
    tokens = json.loads(checkpoint.value)
    del tokens["merges"]
    state.put_checkpoint(CHECKPOINT, json.dumps(tokens), etag=checkpoint.etag)

    poller(app, state, queue).run()  # starts the merges feed, from the last deletions read
    app.stack.marketo.state.user_merge(winner, [loser])
    poller(app, state, queue).run()

    assert [(n.record_id, n.kind) for n in queue.drain()] == [(str(loser), Kind.MERGED)]


def test_a_merge_made_while_a_run_reads_the_deletions_is_queued_as_a_merge(app: App, tmp_path: Path) -> None:
    [winner, loser] = seed(app, 2)
    state, queue = CountingState(tmp_path / "state.sqlite3"), RecordingQueue(tmp_path / "queue.sqlite3")
    run = poller(app, state, queue)
    run.run()
    marketo = app.deps.marketo
    read_merges = marketo.get_lead_activities

    def merge_then_read(*args: object, **kwargs: object) -> object:
        page = read_merges(*args, **kwargs)  # type: ignore[arg-type]
        if not getattr(merge_then_read, "done", False):
            merge_then_read.done = True  # type: ignore[attr-defined]
            app.stack.marketo.state.user_merge(winner, [loser])  # after this run read the merges
        return page

    marketo.get_lead_activities = merge_then_read  # type: ignore[method-assign, assignment]
    try:
        run.run()
    finally:
        del marketo.get_lead_activities
    assert [(n.record_id, n.kind, n.merged_into) for n in queue.drain()] == [
        (str(loser), Kind.MERGED, str(winner))
    ]
