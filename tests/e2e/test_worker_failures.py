"""Failures: Dataverse's refusals and our own pre-checks end on the person's Activity Log and in
the sync log and are not retried blindly; transient faults are rescheduled honouring Retry-After
and parked after the last attempt; a shadow advances only for what was really written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mdsync.harness import WEBHOOK_NAME, LocalSystem
from shared.adapters.sqlite_queue import SqliteQueue
from shared.dataverse import webhooks
from shared.notices import Entity, FieldChange, Kind, Notice, Source
from shared.sync.worker import SyncWorker
from tests.e2e.test_worker_support import (
    actions,
    create_linked,
    failure_activities,
    log_of,
    person,
    row,
    update_as_user,
)

RULE = "A lead needs a company name (rule CR-7)."

# --- refusals --------------------------------------------------------------------------------


def test_a_plugin_refusal_lands_in_the_persons_activity_log(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", companyname="Contoso", jobtitle="Engineer")
    system.dataverse_admin.add_plugin(
        "company-required", "lead", "required", column="companyname", message=RULE
    )
    system.marketo_admin.user_edit(marketo_id, {"company": None, "title": "CTO"})
    system.sync()
    # The whole record's sync failed: nothing of it was written.
    unchanged = row(system, "lead", lead_id)
    assert (unchanged["companyname"], unchanged["jobtitle"]) == ("Contoso", "Engineer")
    (activity,) = failure_activities(system, marketo_id)
    assert activity["errorMessage"] == RULE
    assert activity["errorCode"] == "0x80040265"
    assert activity["entity"] == "lead"
    assert activity["dynamicsId"] == lead_id
    assert "companyname" in activity["fields"]
    (failed,) = [e for e in log_of(system, marketo_id) if e.action == "failed"]
    assert RULE in failed.detail
    # Not retried blindly: nothing rescheduled, and another quiet round changes nothing.
    assert "rescheduled" not in actions(system, marketo_id)
    system.sweep()
    system.sync()
    assert len(failure_activities(system, marketo_id)) == 1
    # The person's next change tries again, and now it passes.
    system.marketo_admin.user_edit(marketo_id, {"company": "Fabrikam"})
    system.sync()
    fixed = row(system, "lead", lead_id)
    assert (fixed["companyname"], fixed["jobtitle"]) == ("Fabrikam", "CTO")
    assert len(failure_activities(system, marketo_id)) == 1


def test_a_value_the_metadata_refuses_is_never_sent(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    sent = system.deps.dataverse.calls.snapshot()
    system.marketo_admin.user_edit(marketo_id, {"title": "T" * 150, "leadSource": "Billboard"})
    system.sync()
    assert system.deps.dataverse.calls.snapshot().get("POST $batch") == sent.get("POST $batch")
    assert row(system, "lead", lead_id)["jobtitle"] == "Engineer"
    (activity,) = failure_activities(system, marketo_id)
    assert activity["errorCode"] == "mdsync-validation"
    assert "jobtitle is 150 characters long; the maximum is 100" in activity["errorMessage"]
    assert "'Billboard' has no Dynamics value" in activity["errorMessage"]


def test_a_failed_write_does_not_block_the_other_persons_of_the_batch(system: LocalSystem) -> None:
    first_id, first = create_linked(system, "lead", companyname="Contoso", emailaddress1="a@fabrikam.example")
    second_id, second = create_linked(
        system, "lead", companyname="Contoso", emailaddress1="b@fabrikam.example"
    )
    system.dataverse_admin.add_plugin(
        "company-required", "lead", "required", column="companyname", message=RULE
    )
    system.marketo_admin.user_edit(first, {"company": None})
    system.marketo_admin.user_edit(second, {"company": "Fabrikam"})
    updates = system.deps.dataverse.calls.snapshot().get("POST $batch", 0)
    system.sync()  # one poll: both persons in one batch
    # One $batch for both rows: each row succeeds or fails alone.
    assert system.deps.dataverse.calls.snapshot().get("POST $batch", 0) - updates == 1
    assert row(system, "lead", first_id)["companyname"] == "Contoso"
    assert row(system, "lead", second_id)["companyname"] == "Fabrikam"
    assert len(failure_activities(system, first)) == 1
    assert failure_activities(system, second) == []


# --- transient faults, with the worker driven directly -------------------------------------------


@dataclass
class Rig:
    """The app's clients and state store, a worker of its own and a queue whose clock the test
    moves, so a schedule an hour away is checked without waiting for it."""

    system: LocalSystem
    worker: SyncWorker
    queue: SqliteQueue
    now: list[float]
    lead_id: str
    marketo_id: int

    def due(self, after_seconds: float) -> list[Notice]:
        self.now[0] += after_seconds
        received = self.queue.receive(100, lock_seconds=5)
        for message in received:
            self.queue.complete(message.lock_token)
        return [m.notice for m in received]


@pytest.fixture
def rig(system: LocalSystem, tmp_path: Path) -> Iterator[Rig]:
    deps = system.deps
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana", jobtitle="Engineer")
    # From here on, changes reach the worker only through the notices the test builds.
    webhooks.unregister(deps.dataverse, WEBHOOK_NAME)
    now = [datetime.now(UTC).timestamp()]
    queue = SqliteQueue(tmp_path / "retry.sqlite3", clock=lambda: now[0])
    worker = SyncWorker(
        deps.marketo,
        deps.dataverse,
        deps.state,
        queue,
        deps.mapping,
        activity_log=deps.activity_log,
        max_attempts=3,
    )
    yield Rig(system, worker, queue, now, lead_id, marketo_id)
    system.dataverse_admin.clear_faults()
    system.marketo_admin.clear_faults()


def _notices(marketo_id: int, lead_id: str) -> list[Notice]:
    now = datetime.now(UTC)
    return [
        Notice(
            source=Source.MARKETO,
            entity=Entity.PERSON,
            record_id=str(marketo_id),
            kind=Kind.UPDATED,
            changes={"title": FieldChange(old="Engineer", new="CTO")},
            occurred_at=now,
        ),
        Notice(
            source=Source.DYNAMICS,
            entity=Entity.LEAD,
            record_id=lead_id,
            kind=Kind.UPDATED,
            changes={"firstname": FieldChange(old="Ana", new="Anna")},
            occurred_at=now,
        ),
    ]


def test_a_throttled_write_is_rescheduled_after_retry_after(rig: Rig) -> None:
    system, lead_id, marketo_id = rig.system, rig.lead_id, rig.marketo_id
    system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
    update_as_user(system, "lead", lead_id, firstname="Anna")
    system.dataverse_admin.throttle(1, retry_after=60, path="$batch")
    result = rig.worker.process(_notices(marketo_id, lead_id))
    assert result.rescheduled == 2
    # Marketo was written, Dynamics was not; the shadow knows exactly that.
    assert person(system, marketo_id)["firstName"] == "Anna"
    assert row(system, "lead", lead_id)["jobtitle"] == "Engineer"
    shadow = system.deps.state.get_shadows([marketo_id])[marketo_id].values
    assert (shadow["firstName"], shadow["title"]) == ("Anna", "Engineer")
    assert "rescheduled" in actions(system, marketo_id)
    # Dataverse said 60 s: not before.
    assert rig.due(55) == []
    again = rig.due(10)
    assert sorted(n.attempt for n in again) == [1, 1]
    rig.worker.process(again)
    assert row(system, "lead", lead_id)["jobtitle"] == "CTO"
    assert system.deps.state.get_shadows([marketo_id])[marketo_id].values["title"] == "CTO"


def test_a_read_fault_reschedules_the_whole_batch(rig: Rig) -> None:
    system, lead_id, marketo_id = rig.system, rig.lead_id, rig.marketo_id
    system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
    system.marketo_admin.inject_fault("607")  # daily quota spent: retry after the reset
    result = rig.worker.process(_notices(marketo_id, lead_id))
    assert result.rescheduled == 2
    assert row(system, "lead", lead_id)["jobtitle"] == "Engineer"
    assert rig.due(rig.worker.policy.max_delay_seconds - 5) == []
    rig.worker.process(rig.due(10))
    assert row(system, "lead", lead_id)["jobtitle"] == "CTO"


def test_a_notice_is_parked_after_the_last_attempt(rig: Rig) -> None:
    system, lead_id, marketo_id = rig.system, rig.lead_id, rig.marketo_id
    system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
    system.dataverse_admin.throttle(10, retry_after=30, path="$batch")
    notices = _notices(marketo_id, lead_id)[:1]
    for attempt in range(1, rig.worker.max_attempts):
        result = rig.worker.process(notices)
        assert result.rescheduled == 1
        notices = rig.due(31)
        assert [n.attempt for n in notices] == [attempt]
    result = rig.worker.process(notices)
    assert (result.rescheduled, result.parked) == (0, 1)
    (parked,) = system.deps.state.parked()
    assert "RateLimitedError" in parked.reason
    assert Notice.from_json(parked.body).record_id == str(marketo_id)
    assert "parked" in actions(system, marketo_id)
    assert rig.due(3600) == []
