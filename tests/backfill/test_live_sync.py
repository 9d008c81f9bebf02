"""The ongoing sync keeps going during a backfill: a change a user makes while the job runs
syncs at once through the live path, and the backfill, finding the record changed by someone
else since it read it, writes nothing over it and leaves it to the live sync."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from mdsync.harness import PATIENCE, LocalSystem
from shared.backfill import runner, writing
from shared.backfill.context import Context, Outcome
from shared.backfill.fence import Fence
from shared.backfill.job import JobState, Phase, Status
from shared.backfill.runner import PhaseSpec
from shared.ports import Claimed
from shared.sync.batch import Batch, Decision
from shared.sync.journal import Journal
from shared.sync.worker import SyncWorker
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


def test_a_live_write_whose_link_is_not_stored_yet_is_not_overwritten_by_the_backfill(
    world: World, system: LocalSystem, run_backfill: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live worker writes both sides, then stores the link: a range of backfill writes
    checked in between saw no link (and the guard query no user: the worker's Dynamics write
    made our own user the last modifier), and wrote its older values over the live change.
    The interleaving is driven with events: the worker stops after its writes, before it stores
    its link, while the backfill checks and writes its range."""
    world.person("ana", email="ana@fabrikam.example", lastName="Lopez", title="Chief", phone="+14255550100")
    ana_lead = world.record("ana", emailaddress1="ana@fabrikam.example", lastname="Lopez", jobtitle="CTO")
    world.person("bo", email="bo@contoso.example", lastName="Berg")
    world.record("bo", emailaddress1="bo@contoso.example", lastname="Berg", jobtitle="CFO")
    written, go = threading.Event(), threading.Event()
    store_links = SyncWorker._store_links

    def worker_stops_between_its_writes_and_its_link(
        worker: SyncWorker, batch: Batch, decisions: Mapping[int, Decision], journal: Journal
    ) -> None:
        if not go.is_set() and any(p.dynamics_id.lower() == ana_lead for p in batch.pairs.values()):
            written.set()
            assert go.wait(PATIENCE), "the backfill's range never ran"
        store_links(worker, batch, decisions, journal)

    monkeypatch.setattr(SyncWorker, "_store_links", worker_stops_between_its_writes_and_its_link)
    spec = runner.PHASES[Phase.MARKETO_WRITES]

    def user_edits_then_range_runs_in_the_window(ctx: Context, job: JobState) -> Outcome:
        if go.is_set():
            return spec.unit(ctx, job)
        # Read and matched: Ana's pair is to get Dynamics' "CTO" in Marketo. A salesperson edits.
        system.dataverse_admin.update_as(USER, "leads", ana_lead, {"jobtitle": "CEO"})
        assert written.wait(PATIENCE), "the live worker never wrote"
        # The live worker has written Marketo ("CEO") and Dynamics (the phone: our own user is
        # now the lead's last modifier, which hides the salesperson's edit), not its link yet.
        assert world.marketo("ana")["title"] == "CEO"
        assert world.dynamics("ana")["telephone1"]
        assert not world.links()
        try:
            return spec.unit(ctx, job)  # the backfill checks its range and writes it, now
        finally:
            go.set()

    monkeypatch.setitem(
        runner.PHASES,
        Phase.MARKETO_WRITES,
        PhaseSpec(user_edits_then_range_runs_in_the_window, spec.start, spec.runs),
    )

    job = run_backfill()

    assert job.status is Status.DONE, job.error
    assert job.counts["records_taken_by_live_sync"] == 1
    system.sync()
    assert world.marketo("ana")["title"] == "CEO"  # the backfill's older "CTO" did not land
    assert world.dynamics("ana")["jobtitle"] == "CEO"
    assert world.linked("ana", "ana")
    assert world.linked("bo", "bo")  # the rest of the range was written as usual
    assert world.marketo("bo")["title"] == "CFO"


def test_a_live_batch_waits_while_the_backfill_writes_its_records_then_syncs(
    world: World, system: LocalSystem, run_backfill: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the backfill has checked a range and is about to write it when a live
    batch for one of its records runs to the end of its writes. The batch claimed its records,
    saw the range and put that pair back on the queue, so nothing of it landed before the
    backfill's write; it syncs once the range is written, over the backfill's values."""
    world.person("ana", email="ana@fabrikam.example", lastName="Lopez", title="Chief", phone="+14255550100")
    ana_lead = world.record("ana", emailaddress1="ana@fabrikam.example", lastname="Lopez", jobtitle="CTO")
    put_back, writes_done, go = threading.Event(), threading.Event(), threading.Event()
    claim = Fence.claim

    def claim_and_tell(fence: Fence, records: Sequence[tuple[str, str, int | None]]) -> Claimed:
        claimed = claim(fence, records)
        if ("lead", ana_lead) in claimed.busy:
            put_back.set()
        return claimed

    store_links = SyncWorker._store_links

    def worker_stops_after_its_writes(
        worker: SyncWorker, batch: Batch, decisions: Mapping[int, Decision], journal: Journal
    ) -> None:
        if not go.is_set() and any(n.record_id.lower() == ana_lead for n in batch.notices):
            writes_done.set()  # whatever it wrote of Ana's has landed
            assert go.wait(PATIENCE), "the backfill's range never ran"
        store_links(worker, batch, decisions, journal)

    monkeypatch.setattr(Fence, "claim", claim_and_tell)
    monkeypatch.setattr(SyncWorker, "_store_links", worker_stops_after_its_writes)
    hold_taken = writing.hold_taken

    def checked_then_live_batch_runs(ctx: Context, job: JobState, *args: Any) -> None:
        hold_taken(ctx, job, *args)
        if job.phase is Phase.MARKETO_WRITES and not go.is_set():
            # The range is checked (nothing held) and not written yet: a salesperson edits, and
            # the live batch runs through its writes before the backfill writes the range.
            system.dataverse_admin.update_as(USER, "leads", ana_lead, {"jobtitle": "CEO"})
            assert writes_done.wait(PATIENCE), "the live batch never ran"
            go.set()

    monkeypatch.setattr(writing, "hold_taken", checked_then_live_batch_runs)

    job = run_backfill()

    assert job.status is Status.DONE, job.error
    assert put_back.is_set()  # the live batch saw the range and waited
    system.sync()
    assert world.marketo("ana")["title"] == "CEO"  # the live change, after the range's "CTO"
    assert world.dynamics("ana")["jobtitle"] == "CEO"
    assert world.linked("ana", "ana")
    assert len([p for p in system.marketo_admin.persons() if p["email"] == "ana@fabrikam.example"]) == 1
