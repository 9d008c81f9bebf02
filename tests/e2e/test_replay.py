"""Given up, replayable: parked notices, dead letters and unreadable messages are listed and
replayed one way (``mdsync replay``), a replay is never dropped as a duplicate, and an item leaves
its store only once the queue took its replacement."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter

from functions.sync_worker import sync_worker
from mdsync.cli import main
from mdsync.harness import LocalSystem
from shared.adapters.sqlite_queue import LocalDeadLetters, SqliteQueue
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import ParkedNotice, RawMessage
from shared.replay import ParkedNotices, replay
from tests.e2e.test_worker_support import create_linked, person, update_as_user

GARBAGE = '{"source": "marketo", "kind": "teleported", "note": "a newer notice, or no notice at all"}'


def _park_one_change(system: LocalSystem) -> tuple[str, int]:
    """A Dynamics change whose sync is refused for a reason that is not the person's data
    (Marketo: no permission), so its notice is parked; returns (lead id, Marketo id)."""
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    system.marketo_admin.inject_fault("603")  # the worker's read of the person: access denied
    update_as_user(system, "lead", lead_id, jobtitle="CTO")
    system.wait_idle()
    system.marketo_admin.clear_faults()
    (parked,) = system.deps.state.parked()
    assert Notice.from_json(parked.body).record_id == lead_id
    assert person(system, marketo_id)["title"] == "Engineer"
    return lead_id, marketo_id


def test_a_replay_within_the_dedup_window_is_queued_and_synced(system: LocalSystem) -> None:
    """Issue 12, fault 1: replay rebuilt the first attempt's dedup id, which the queue dropped as a
    duplicate within its 10-minute window, and then deleted the parked notice anyway."""
    _, marketo_id = _park_one_change(system)

    assert main(["replay"]) == 0
    system.wait_idle()

    assert person(system, marketo_id)["title"] == "CTO"
    assert system.deps.state.parked() == []


def test_every_replay_gets_an_id_of_its_own(system: LocalSystem) -> None:
    _park_one_change(system)
    (item,) = ParkedNotices(system.deps.state).peek(10)
    with system.worker_held():
        replay([ParkedNotices(system.deps.state)], system.queue)
        # Given up on once more, and replayed again at once: a second message, not a duplicate.
        system.deps.state.park([ParkedNotice(item.item_id, item.body, "again", datetime.now(UTC))])
        replay([ParkedNotices(system.deps.state)], system.queue)
        assert system.queue.active_count() == 2
    system.wait_idle()


def test_a_replay_the_queue_does_not_take_leaves_the_item_parked(system: LocalSystem) -> None:
    _park_one_change(system)
    impatient = SqliteQueue(system.queue_path, queue_name="mdsync-notices", busy_timeout=0.05)
    blocker = sqlite3.connect(system.queue_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        report = replay([ParkedNotices(system.deps.state)], impatient)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        impatient.close()
    assert report.replayed == []
    assert [why for _, why in report.failed] == [report.failed[0][1]]
    assert "SQLITE_BUSY" in report.failed[0][1]
    assert len(system.deps.state.parked()) == 1


def test_a_dead_letter_is_replayed_through_the_same_path(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    with system.worker_held():
        update_as_user(system, "lead", lead_id, jobtitle="CTO")
        system.webhooks_delivered()
        (got,) = system.queue.receive(1)
        system.queue.dead_letter(got.lock_token, "MaxDeliveryCountExceeded", "the worker crashed 10 times")
    system.wait_idle()
    assert person(system, marketo_id)["title"] == "Engineer"
    (dead,) = LocalDeadLetters(system.queue).peek(10)
    assert dead.reason == "MaxDeliveryCountExceeded: the worker crashed 10 times"

    assert main(["replay", dead.item_id]) == 0
    system.wait_idle()

    assert person(system, marketo_id)["title"] == "CTO"
    assert system.queue.dead_letters() == []


def test_an_unreadable_message_is_parked_with_its_body_and_the_rest_syncs(system: LocalSystem) -> None:
    """Issue 12, fault 4: the worker dropped what it could not read (in Azure) while the local queue
    dead-lettered it before delivery, so no test saw the difference."""
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    with system.worker_held():
        system.queue.send_raw([RawMessage("m-garbage", GARBAGE)])
        update_as_user(system, "lead", lead_id, jobtitle="CTO")
        system.webhooks_delivered()
    system.wait_idle()

    assert person(system, marketo_id)["title"] == "CTO"
    (parked,) = system.deps.state.parked()
    assert (parked.dedup_id, parked.body) == ("unreadable-m-garbage", GARBAGE)
    assert "kind" in parked.reason
    assert system.queue.dead_letters() == []

    # Replayed as it is (for a reader that understands it): this one parks it again.
    assert main(["replay"]) == 0
    system.wait_idle()
    (again,) = system.deps.state.parked()
    assert again.body == GARBAGE
    assert again.dedup_id.startswith("unreadable-replay-")
    assert main(["replay", "--discard", again.dedup_id]) == 0
    assert system.deps.state.parked() == []


def delivered(body: bytes, message_id: str) -> Any:
    """The message the Functions host hands the worker (azure-functions' own converter)."""
    metadata = {
        "MessageId": meta.Datum(type="string", value=message_id),
        "DeliveryCount": meta.Datum(type="int", value=1),
        "ContentType": meta.Datum(type="string", value="application/json"),
        "UserProperties": meta.Datum(type="json", value="{}"),
    }
    return ServiceBusMessageInConverter.decode(
        meta.Datum(type="bytes", value=body), trigger_metadata=metadata
    )


def test_the_function_parks_unreadable_messages_as_azure_delivers_them(system: LocalSystem) -> None:
    good = Notice(
        source=Source.OPERATOR,
        entity=Entity.PERSON,
        record_id="424242",
        kind=Kind.UPDATED,
        occurred_at=datetime.now(UTC),
    )
    messages = [
        delivered(GARBAGE.encode(), "m-1"),
        delivered(b"", "m-2"),
        delivered(good.to_json().encode(), good.dedup_id),
    ]
    sync_worker(messages)
    parked = {p.dedup_id: p for p in system.deps.state.parked()}
    assert set(parked) == {"unreadable-m-1", "unreadable-m-2"}
    assert parked["unreadable-m-1"].body == GARBAGE
    assert "empty" in parked["unreadable-m-2"].reason


def test_a_notice_from_a_newer_version_is_read(system: LocalSystem) -> None:
    """Issue 12, fault 4: an older worker (a rollback, a slot swap) refused every notice a newer one wrote."""
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    newer = json.loads(
        Notice(
            source=Source.OPERATOR,
            entity=Entity.PERSON,
            record_id=str(marketo_id),
            kind=Kind.UPDATED,
            occurred_at=datetime.now(UTC),
        ).to_json()
    )
    newer.update(schema_version=2, split_from=[1, 2], trace={"origin": "v2 worker"})
    system.stack.marketo.state.user_edit(marketo_id, {"title": "VP"})
    system.queue.send_raw([RawMessage("newer-1", json.dumps(newer))])
    system.wait_idle()
    lead = system.dataverse_admin.row("lead", lead_id)
    assert lead is not None
    assert lead["jobtitle"] == "VP"
    assert system.deps.state.parked() == []


@pytest.mark.parametrize("argv", [["replay", "--dry-run"], ["replay", "--dry-run", "nope"]])
def test_a_dry_run_lists_and_changes_nothing(system: LocalSystem, argv: list[str]) -> None:
    _park_one_change(system)
    assert main(argv) == 0
    assert len(system.deps.state.parked()) == 1
