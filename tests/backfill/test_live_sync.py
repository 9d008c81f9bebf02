"""The ongoing sync keeps going during a backfill: a change a user makes while the job runs
syncs at once through the live path, and the backfill, finding the record changed by someone
else since it read it, writes nothing over it and leaves it to the live sync."""

from __future__ import annotations

import pytest

from mdsync.harness import LocalSystem
from shared.backfill import runner
from shared.backfill.context import Context, Outcome
from shared.backfill.job import JobState, Phase, Status
from shared.backfill.runner import PhaseSpec
from tests.backfill.conftest import Run, World

USER = "Jane Doe"


def test_a_change_made_during_the_backfill_syncs_live_and_is_not_overwritten(
    world: World, system: LocalSystem, run_backfill: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.person("ana", email="ana@fabrikam.example", lastName="Lopez")
    ana_lead = world.record("ana", emailaddress1="ana@fabrikam.example", lastname="Lopez", jobtitle="CTO")
    world.person("bo", email="bo@contoso.example", lastName="Berg")
    world.record("bo", emailaddress1="bo@contoso.example", lastname="Berg", jobtitle="CFO")
    spec = runner.PHASES[Phase.MARKETO_WRITES]
    seen: dict[str, object] = {}

    def user_edits_then_writes(ctx: Context, job: JobState) -> Outcome:
        if not seen:
            # The job has read and matched both pairs; now a salesperson edits Ana's lead.
            system.dataverse_admin.update_as(USER, "leads", ana_lead, {"jobtitle": "CEO"})
            seen["live"] = system.until(lambda: world.marketo("ana").get("title") == "CEO")
            # The live batch is done (its link and shadow stored), not only past its Marketo write.
            system.wait_idle()
        return spec.unit(ctx, job)

    monkeypatch.setitem(
        runner.PHASES, Phase.MARKETO_WRITES, PhaseSpec(user_edits_then_writes, spec.start, spec.runs)
    )

    job = run_backfill()

    assert seen["live"]  # synced while the backfill was between its reads and its writes
    assert job.status is Status.DONE, job.error
    assert job.counts["records_taken_by_live_sync"] == 1
    system.sync()
    assert world.marketo("ana")["title"] == "CEO"  # the backfill's older value did not win
    assert world.dynamics("ana")["jobtitle"] == "CEO"
    assert world.linked("ana", "ana")  # by the live sync (first link), once
    assert len([p for p in system.marketo_admin.persons() if p["email"] == "ana@fabrikam.example"]) == 1
    assert world.linked("bo", "bo")  # the other pair is the backfill's as usual
    assert world.marketo("bo")["title"] == "CFO"
