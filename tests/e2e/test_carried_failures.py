"""A pair whose notices carry Marketo's side is planned once: what its plan reports (a value left
out, a collision) reaches the sync log, the person's Activity Log, the console, the application's
log and the metrics exactly once, whether loading's trial plan is kept or thrown away."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from mdsync.harness import LocalSystem
from shared.console import tallies as t
from shared.ports import ErrorQuery
from tests.e2e.test_marketo_campaign import reads, synced_an_hour_ago
from tests.e2e.test_worker_support import create_linked, failure_activities, log_of, row, webhooks_held
from tests.metrics import recorded_metrics

JOURNAL = "shared.sync.journal"


def lines(caplog: pytest.LogCaptureFixture, action: str, marketo_id: int) -> list[str]:
    """The application's log lines of sync-log entries ``action`` about the person."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == JOURNAL and r.getMessage().startswith(f"{action} marketo:{marketo_id} ")
    ]


def test_a_value_left_out_of_a_carried_pairs_write_is_reported_and_counted_once(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    synced_an_hour_ago(system, marketo_id)  # the poll's notice may stand for a read
    before = reads(system)
    since = datetime.now(UTC) - timedelta(hours=1)

    with recorded_metrics() as metrics, caplog.at_level(logging.INFO, logger=JOURNAL):
        system.marketo_admin.user_edit(marketo_id, {"title": "T" * 150, "city": "Lyon"})
        system.sync()

        assert reads(system) == before, "the pair was not carried: this test would prove nothing"
        assert metrics.points("failures") == {(("direction", "to_dynamics"), ("reason", "validation")): 1}
    # The rest of the write went through; the value left out was not lost: it is still Marketo's.
    synced = row(system, "lead", lead_id)
    assert (synced["address1_city"], synced["jobtitle"]) == ("Lyon", "Engineer")
    assert system.marketo_admin.person(marketo_id)["title"] == "T" * 150
    # Reported once everywhere the operator looks.
    (failed,) = [e for e in log_of(system, marketo_id) if e.action == "failed"]
    assert "jobtitle is 150 characters long; the maximum is 100" in failed.detail
    assert len(lines(caplog, "failed", marketo_id)) == 1
    (activity,) = failure_activities(system, marketo_id)
    assert activity["errorCode"] == "mdsync-validation"
    (error,) = system.deps.operations.list_errors(ErrorQuery(person=str(marketo_id))).errors
    assert (error.field, error.count) == ("jobtitle", 1)
    lane = ("lead", t.TO_DYNAMICS, t.FAILED)
    tallies = system.deps.operations.read_tallies(since)
    assert sum(x.count for x in tallies if (x.entity, x.direction, x.name) == lane) == 1


def test_a_trial_plan_thrown_away_reports_nothing_and_the_read_decides_once(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    synced_an_hour_ago(system, marketo_id)
    before = reads(system)

    with recorded_metrics() as metrics, caplog.at_level(logging.INFO, logger=JOURNAL):
        with webhooks_held(system):  # the Dynamics edit's notice comes later
            system.dataverse_admin.update_as("Jane Doe", "leads", lead_id, {"jobtitle": "VP"})
            system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
            system.poll()
            system.until(lambda: row(system, "lead", lead_id)["jobtitle"] == "CTO")
        system.sync()

        assert reads(system) > before, "the collision was decided on a read"
        assert metrics.points("collisions") == {(("entity", "lead"), ("winner", "marketo")): 1}
    assert [e.action for e in log_of(system, marketo_id)].count("collision") == 1
    assert len(lines(caplog, "collision", marketo_id)) == 1
