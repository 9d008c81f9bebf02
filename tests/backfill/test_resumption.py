"""Killed in any phase, the backfill resumes where it stopped and ends as an uninterrupted run
would: every pair linked once, every missing person created once, no duplicate.

The kill is a BaseException raised right after a unit of work has had its effects and before
the job's state records it (the worst moment: the unit is done again on resumption). The bench
kills a real process at random moments (mdsync/bench/backfill.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mdsync.harness import LocalSystem
from shared.backfill import runner
from shared.backfill.context import Context, Outcome
from shared.backfill.job import JobState, Options, Phase, Status
from shared.backfill.runner import Backfill, PhaseSpec
from tests.backfill.conftest import OWNER, World, make_context

PAIRS = 18
ONLY_DYNAMICS = 4
ONLY_MARKETO = 3
SPREAD = timedelta(days=70)  # persons created over three 31-day windows
START = datetime.now(UTC) - SPREAD - timedelta(days=3)


class Killed(BaseException):
    """The process died here."""


def seed(world: World) -> None:
    persons = []
    for i in range(PAIRS + ONLY_MARKETO):
        created = (START + SPREAD * (i / (PAIRS + ONLY_MARKETO))).strftime("%Y-%m-%dT%H:%M:%SZ")
        persons.append({"email": f"p{i}@kill.example", "lastName": f"P{i}", "createdAt": created})
    world.system.marketo_admin.seed_persons(persons)
    rows = [
        {"emailaddress1": f"P{i}@kill.example", "lastname": f"P{i}", "jobtitle": f"T{i}", "subject": "k"}
        for i in range(PAIRS)
    ]
    rows += [
        {"emailaddress1": f"new{i}@kill.example", "lastname": f"N{i}", "jobtitle": "New", "subject": "k"}
        for i in range(ONLY_DYNAMICS)
    ]
    world.system.dataverse_admin.seed("lead", rows)


def small_units(system: LocalSystem) -> Context:
    """Many units in every phase: each a place to be killed at."""
    return make_context(system, range_items=3, sync_leads_max=0, page_size=5, link_page=4)


def killing(phase: Phase, after: int) -> Callable[[Context, JobState], Outcome]:
    spec = runner.PHASES[phase]
    calls = {"n": 0}

    def unit(ctx: Context, job: JobState) -> Outcome:
        outcome = spec.unit(ctx, job)
        calls["n"] += 1
        if calls["n"] == after:
            raise Killed(f"killed in {phase.value} after unit {after}")
        return outcome

    return unit


def check_end_state(world: World, job: JobState) -> None:
    assert job.status is Status.DONE, job.error
    persons = world.system.marketo_admin.persons()
    leads = world.system.dataverse_admin.rows("lead")
    emails = [str(p.get("email") or "").lower() for p in persons]
    assert len(emails) == len(set(emails)), "a duplicate person"
    assert len(persons) == PAIRS + ONLY_MARKETO + ONLY_DYNAMICS
    assert len(leads) == PAIRS + ONLY_DYNAMICS, "a lead was created"
    links = world.links()
    assert len(links) == PAIRS + ONLY_DYNAMICS, "a pair unlinked"
    by_id = {p["id"]: p for p in persons}
    for lead in leads:
        marketo_id = int(lead["mdsync_marketoid"])
        assert links[marketo_id] == ("lead", lead["leadid"].lower())
        person = by_id[marketo_id]
        assert person["email"].lower() == lead["emailaddress1"].lower()
        assert person["title"] == lead["jobtitle"]  # the first-link rule filled Marketo
        assert person["msftLeadId"] == lead["leadid"].lower()
    assert set(world.system.deps.state.get_shadows(links)) == set(links)


@pytest.mark.parametrize(
    "phase",
    [p for p in Phase if p not in (Phase.PARTNERS, Phase.DONE)],
    ids=lambda p: p.value,
)
def test_a_kill_in_any_phase_resumes_to_the_same_end(
    phase: Phase, world: World, system: LocalSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(world)
    if phase is Phase.LINKS:  # links to read: some pairs linked by the live sync already
        first = Backfill(small_units(system), owner=OWNER)
        first.start(Options(created_from=START))
        first.run()
    killed_spec = PhaseSpec(killing(phase, after=2), runner.PHASES[phase].start, runner.PHASES[phase].runs)
    monkeypatch.setitem(runner.PHASES, phase, killed_spec)
    backfill = Backfill(small_units(system), owner=OWNER)
    backfill.start(Options(created_from=START), restart=True)
    with pytest.raises(Killed):
        backfill.run()
    stopped = backfill.current()
    assert stopped is not None
    assert stopped.phase is phase  # it died where it was meant to

    monkeypatch.undo()
    resumed = Backfill(small_units(system), owner=OWNER)  # the command run again
    job = resumed.run()
    system.wait_idle(60)

    assert job.id == stopped.id
    check_end_state(world, job)


def test_an_uninterrupted_run_ends_the_same(world: World, system: LocalSystem) -> None:
    seed(world)
    backfill = Backfill(small_units(system), owner=OWNER)
    backfill.start(Options(created_from=START))
    job = backfill.run()
    system.wait_idle(60)
    check_end_state(world, job)
    assert job.counts["persons_created"] == ONLY_DYNAMICS
    assert job.counts["persons_marketo_only"] == ONLY_MARKETO


def test_another_machine_waits_for_the_lease_then_takes_the_job_over(
    world: World, system: LocalSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(world)
    monkeypatch.setitem(
        runner.PHASES,
        Phase.MATCH_EMAILS,
        PhaseSpec(killing(Phase.MATCH_EMAILS, 1), runner.PHASES[Phase.MATCH_EMAILS].start),
    )
    first = Backfill(small_units(system), owner="machine-a", lease_seconds=1.5)
    first.start(Options(created_from=START))
    held: dict[str, Any] = {}

    def die_holding_the_lease(*args: Any, **kwargs: Any) -> None:
        held["released"] = False  # a killed process releases nothing

    monkeypatch.setattr(system.deps.state, "release_lease", die_holding_the_lease)
    with pytest.raises(Killed):
        first.run()
    monkeypatch.undo()

    other = Backfill(small_units(system), owner="machine-b", lease_seconds=60)
    assert other.step(budget_seconds=5).busy  # the lease is still the first runner's
    job = system.until(lambda: _finished(other), timeout=60)
    system.wait_idle(60)
    check_end_state(world, job)


def _finished(backfill: Backfill) -> JobState | None:
    result = backfill.step(budget_seconds=5)
    return result.job if result.finished else None


def test_a_kill_as_the_job_finishes_keeps_its_staging_and_its_counts(
    world: World, system: LocalSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(world)
    finish = Backfill._finish

    def finish_then_die(self: Backfill, job: JobState) -> None:
        finish(self, job)
        raise Killed("killed as the job finished, before it was saved done")

    monkeypatch.setattr(Backfill, "_finish", finish_then_die)
    backfill = Backfill(small_units(system), owner=OWNER)
    backfill.start(Options(created_from=START))
    with pytest.raises(Killed):
        backfill.run()
    monkeypatch.undo()

    job = Backfill(small_units(system), owner=OWNER).run()  # the command run again
    system.wait_idle(60)

    check_end_state(world, job)
    # It finished where it stopped: nothing read again (a lost staging would have made it start
    # over, finding every pair linked already).
    assert job.counts["pairs_by_email"] == PAIRS
    assert job.counts.get("pairs_by_link", 0) == 0
