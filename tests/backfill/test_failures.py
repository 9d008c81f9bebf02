"""Rows Marketo refuses in a Bulk Lead Import come back in its failures file: each is reported
on its person (the sync log and the person's Activity Log), the pair keeps its link and gets no
shadow (its next change is a first link again), and every other row is written."""

from __future__ import annotations

from mdsync.harness import LocalSystem
from shared.backfill.job import Status
from shared.sync.activity_log import FAILURE_TYPE
from tests.backfill.conftest import Run, World, make_context


def test_bad_rows_in_an_import_failures_file_are_reported_on_their_persons(
    world: World, run_backfill: Run, system: LocalSystem
) -> None:
    # Linked by the Marketo id stored on the record; the record's email is one Marketo refuses.
    ivy = world.person("ivy", lastName="Ivy")
    world.record("ivy", emailaddress1="ivy@@bad.example", lastname="Ivy", mdsync_marketoid=str(ivy))
    world.person("joe", email="joe@fabrikam.example", lastName="Joe")
    world.record("joe", emailaddress1="joe@fabrikam.example", lastname="Joe", jobtitle="CFO")
    # A record with no person and an email Marketo refuses: its person cannot be created.
    world.record("kim", emailaddress1="kim@@bad.example", lastname="Kim")
    world.record("lou", emailaddress1="lou@fabrikam.example", lastname="Lou")

    job = run_backfill(ctx=make_context(system, sync_leads_max=0))  # every write an import

    assert job.status is Status.DONE, job.error
    assert job.counts["import_files_mw"] >= 1
    assert job.counts["import_files_cf"] >= 1
    assert job.counts["marketo_failures"] == 1
    assert job.counts["create_failures"] == 1
    # ivy: reported on the person, in the sync log and in Marketo's Activity Log.
    log = system.deps.state.read_log(marketo_id=ivy)
    failed = [e for e in log if e.action == "failed"]
    assert failed, log
    assert "Invalid" in failed[0].detail
    type_id = system.deps.activity_log.type_id()
    activities = system.marketo_admin.activities(ivy, [type_id])
    assert len(activities) == 1
    assert FAILURE_TYPE.api_name
    # ... linked, without a shadow; the other pair written and settled.
    assert world.linked("ivy", "ivy")
    assert ivy not in system.deps.state.get_shadows([ivy])
    assert world.marketo("joe")["title"] == "CFO"
    assert world.persons["joe"] in system.deps.state.get_shadows([world.persons["joe"]])
    # kim: no person, no link, reported on the record; lou created as usual.
    kim_log = system.deps.state.read_log(dynamics_id=world.records["kim"][1])
    assert any(e.action == "failed" for e in kim_log), kim_log
    assert world.records["kim"] not in set(world.links().values())
    assert not world.dynamics("kim").get("mdsync_marketoid")
    assert world.dynamics("lou").get("mdsync_marketoid")


def test_rows_refused_by_sync_leads_are_reported_the_same_way(
    world: World, run_backfill: Run, system: LocalSystem
) -> None:
    ivy = world.person("ivy", lastName="Ivy")
    world.record("ivy", emailaddress1="ivy@@bad.example", lastname="Ivy", mdsync_marketoid=str(ivy))

    job = run_backfill()  # a handful of rows: Sync Leads

    assert job.status is Status.DONE, job.error
    assert job.counts.get("import_files_mw", 0) == 0
    assert job.counts["marketo_failures"] == 1
    assert any(e.action == "failed" for e in system.deps.state.read_log(marketo_id=ivy))
    assert ivy not in system.deps.state.get_shadows([ivy])
