"""The dynamics_sweep function and the DynamicsSweep behind it, against the Dataverse simulator:
what it queues in each mode, that a webhook and the sweep name one change alike, that a refused
delta link restarts tracking without losing the changes, and, through the whole product, that a
change whose webhook Dataverse dropped still reaches Marketo."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from functions.dynamics_sweep import dynamics_sweep
from functions.dynamics_webhook import dynamics_webhook
from mdsync.harness import LocalSystem
from shared.capture.dynamics_sweep import CHANGE_TRACKING, LEASE, MODIFIEDON, DynamicsSweep
from shared.notices import Kind
from simulators.dataverse.config import DEFAULT_HUMAN_USER_ID
from simulators.stack import SYNC_USER_ID

from .conftest import HUMAN, App, CountingState, RecordingQueue, request_from, response_json, timer, utc_now

LEAD_CHECKPOINT = "dynamics-sweep:lead"


def lead(name: str, **extra: object) -> dict[str, object]:
    return {
        "firstname": name,
        "lastname": "Lopez",
        "emailaddress1": f"{name.lower()}@fabrikam.example",
        **extra,
    }


def sweeper(app: App, state: CountingState, queue: RecordingQueue, **options: object) -> DynamicsSweep:
    return DynamicsSweep(
        app.deps.dataverse,
        state,
        queue,
        app.deps.mapping,
        sync_user_ids=app.deps.settings.dynamics_sync_user_ids,
        **options,  # type: ignore[arg-type]
    )


def test_the_sweep_queues_changes_and_deletions_since_the_last_sweep(app: App) -> None:
    admin = app.dataverse_admin
    ana = admin.create_as(HUMAN, "leads", lead("Ana"))
    bo = admin.create_as(HUMAN, "leads", lead("Bo"))
    contact = admin.create_as(HUMAN, "contacts", lead("Cy", mdsync_marketoid="77"))
    dynamics_sweep(timer())  # the first sweep records where to start
    assert app.queued() == []

    admin.update_as(HUMAN, "leads", ana, {"jobtitle": "CTO"})
    app.deps.dataverse.update("contacts", contact, {"jobtitle": "CEO"})  # as mdsync itself
    admin.delete_as(HUMAN, "leads", bo)
    dynamics_sweep(timer())

    notices = {(n.record_id, n.kind): n for n in app.notices()}
    assert set(notices) == {(ana, Kind.UPDATED), (contact, Kind.UPDATED), (bo, Kind.DELETED)}
    updated = notices[ana, Kind.UPDATED]
    row = admin.row("lead", ana)
    assert row is not None
    assert updated.version == str(row["versionnumber"])
    assert (updated.actor, updated.own_write) == (DEFAULT_HUMAN_USER_ID, False)
    assert updated.email == "ana@fabrikam.example"
    assert (notices[contact, Kind.UPDATED].actor, notices[contact, Kind.UPDATED].own_write) == (
        SYNC_USER_ID,
        True,
    )
    # The link column's Marketo id, the worker's hint for finding the link.
    assert (updated.linked_to, notices[contact, Kind.UPDATED].linked_to) == (None, 77)

    dynamics_sweep(timer())
    assert app.queued() == []


def test_a_change_seen_by_the_webhook_and_the_sweep_is_queued_once(app: App) -> None:
    ana = app.dataverse_admin.create_as(HUMAN, "leads", lead("Ana"))
    dynamics_sweep(timer())
    app.register_tap()
    app.dataverse_admin.update_as(HUMAN, "leads", ana, {"jobtitle": "CTO"})
    [delivery] = app.deliveries(1)

    answered = dynamics_webhook(request_from(delivery))
    dynamics_sweep(timer())

    [queued] = app.queued()
    assert queued.message_id == response_json(answered)["id"]


def test_modifiedon_mode_reads_rows_modified_since_the_watermark(app: App, tmp_path: Path) -> None:
    state, queue = CountingState(tmp_path / "state.sqlite3"), RecordingQueue(tmp_path / "queue.sqlite3")
    sweep = sweeper(app, state, queue, use_change_tracking=False)
    assert sweep.run().mode == {"lead": MODIFIEDON, "contact": MODIFIEDON}
    assert queue.sent == []
    ana = app.dataverse_admin.create_as(HUMAN, "leads", lead("Ana"))
    app.dataverse_admin.update_as(HUMAN, "leads", ana, {"jobtitle": "CTO"})

    result = sweep.run()

    [notice] = queue.drain()
    assert (notice.record_id, notice.kind, result.notices) == (ana, Kind.UPDATED, 1)
    row = app.dataverse_admin.row("lead", ana)
    assert row is not None
    assert notice.version == str(row["versionnumber"])
    assert state.writes == 4  # two tables, one write each per run
    # The overlap re-reads recent rows; the same versions give the same dedup ids.
    sweep.run()
    assert queue.active_count() == 0


def test_a_refused_delta_link_restarts_tracking_and_queues_the_gap(app: App) -> None:
    ana = app.dataverse_admin.create_as(HUMAN, "leads", lead("Ana"))
    dynamics_sweep(timer())
    state = app.deps.state
    checkpoint = state.get_checkpoint(LEAD_CHECKPOINT)
    assert checkpoint is not None
    # As Dataverse answers a delta token past its retention: 400. The last good sweep was a
    # minute ago; Ana changed after it, Bo (an imported row) last changed long before.
    expired = json.loads(checkpoint.value)["delta_link"].split("$deltatoken=")[0] + "$deltatoken=expired"
    last_good = utc_now() - timedelta(minutes=1)
    state.put_checkpoint(
        LEAD_CHECKPOINT,
        json.dumps({"delta_link": expired, "at": last_good.isoformat()}),
        etag=checkpoint.etag,
    )
    old = (last_good - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    app.dataverse_admin.seed("lead", [{**lead("Bo"), "createdon": old, "modifiedon": old}])
    app.dataverse_admin.update_as(HUMAN, "leads", ana, {"jobtitle": "CTO"})

    dynamics_sweep(timer())

    assert [(n.record_id, n.kind) for n in app.notices()] == [(ana, Kind.UPDATED)]
    restarted = state.get_checkpoint(LEAD_CHECKPOINT)
    assert restarted is not None
    assert "expired" not in json.loads(restarted.value)["delta_link"]
    dynamics_sweep(timer())
    assert app.queued() == []


def test_a_crash_before_the_checkpoint_repeats_the_same_notices(app: App, tmp_path: Path) -> None:
    state = CountingState(tmp_path / "state.sqlite3")
    queue = RecordingQueue(tmp_path / "queue.sqlite3")
    sweep = sweeper(app, state, queue)
    ana = app.dataverse_admin.create_as(HUMAN, "leads", lead("Ana"))
    bo = app.dataverse_admin.create_as(HUMAN, "leads", lead("Bo"))
    assert sweep.run().mode == {"lead": CHANGE_TRACKING, "contact": CHANGE_TRACKING}
    app.dataverse_admin.update_as(HUMAN, "leads", ana, {"jobtitle": "CTO"})
    app.dataverse_admin.delete_as(HUMAN, "leads", bo)
    state.crashes = 1

    with pytest.raises(RuntimeError):
        sweep.run()
    crashed = list(queue.sent)
    assert len(crashed) == 2

    queue.sent.clear()
    assert sweep.run().notices == 2
    assert queue.sent == crashed
    assert {(n.record_id, n.kind) for n in queue.drain()} == {(ana, Kind.UPDATED), (bo, Kind.DELETED)}


def test_an_overlapping_sweep_does_nothing(app: App, tmp_path: Path) -> None:
    state, queue = CountingState(tmp_path / "state.sqlite3"), RecordingQueue(tmp_path / "queue.sqlite3")
    assert state.acquire_lease(LEASE, "the sweep in progress", 300)
    result = sweeper(app, state, queue).run()
    assert result.skipped == "another sweep holds the lease"
    assert (state.writes, queue.sends) == (0, 0)


def test_a_dropped_webhook_is_caught_by_the_sweep(system: LocalSystem) -> None:
    lead_id = system.dataverse_admin.create_as(HUMAN, "leads", lead("Ana", subject="Web"))
    system.wait_idle()
    (person,) = system.marketo_admin.persons()
    system.sweep()  # the first sweep records where to start
    system.wait_idle()

    system.dataverse_admin.drop_webhooks(1)
    system.dataverse_admin.update_as(HUMAN, "leads", lead_id, {"jobtitle": "CTO"})
    system.wait_idle()
    assert system.dataverse_admin.jobs()[-1]["dropped"]
    assert system.marketo_admin.person(person["id"]).get("title") is None  # the webhook was lost

    system.sweep()
    system.wait_idle()

    assert system.marketo_admin.person(person["id"])["title"] == "CTO"
