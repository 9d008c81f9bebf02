"""The backfill end to end on the simulators: preview, linking, the first-link rule, creation,
the sync filter, ambiguities, stored ids, and what is left alone."""

from __future__ import annotations

from mdsync.harness import LocalSystem
from shared.backfill.job import Status
from tests.backfill.conftest import Run, World


def seed_day_one(world: World) -> None:
    """A tenant on day one: records and persons that belong together, and some that do not."""
    # Same person, email typed differently; the first-link rule has work on each field.
    world.person(
        "ana", email="Ana.Lopez@Fabrikam.example", firstName="Annie", lastName="Lopez", phone="555-0100"
    )
    world.record(
        "ana", emailaddress1=" ana.lopez@fabrikam.example", firstname="Ana", lastname="Lopez", jobtitle="CTO"
    )
    # Already in sync except the link fields.
    world.person("bo", email="bo@contoso.example", firstName="Bo", lastName="Berg")
    world.record("bo", "contact", emailaddress1="bo@contoso.example", firstname="Bo", lastname="Berg")
    # A lead with no person: one is created.
    world.record("cy", emailaddress1="cy@tailspin.example", firstname="Cy", lastname="Chan", jobtitle="VP")
    # The sync filter says no.
    world.record("dee", emailaddress1="dee@adatum.example", lastname="Dee", new_synctomkto=False)
    # Two records, one email, one person: ambiguous.
    world.person("eve", email="eve@litware.example", lastName="Eve")
    world.record("eve-lead", emailaddress1="eve@litware.example", lastname="Eve")
    world.record("eve-contact", "contact", emailaddress1="EVE@litware.example", lastname="Eve")
    # A Marketo person no record wants: never pushed to Dynamics.
    world.person("fay", email="fay@northwind.example", lastName="Fay")


def test_the_preview_writes_nothing_and_says_what_would_happen(world: World, run_backfill: Run) -> None:
    seed_day_one(world)
    persons_before = world.system.marketo_admin.persons()
    leads_before = world.system.dataverse_admin.rows("lead")

    job = run_backfill(dry_run=True)

    assert job.status is Status.PREVIEWED, job.error
    c = job.counts
    assert c["pairs_by_email"] == 2  # ana, bo
    assert c["persons_to_create"] == 1  # cy
    assert c["records_excluded"] == 1  # dee
    assert c["issues_ambiguous"] == 1
    assert c["records_ambiguous"] == 2
    assert c["persons_marketo_only"] == 1  # fay
    # Fields per side and who wins: Dynamics fills Marketo where both hold values (firstName),
    # a blank is filled from the other side (title to Marketo, phone to Dynamics), never blanked.
    assert job.fields["lead.firstName"] == {"to_marketo_replaces": 1}
    assert job.fields["lead.title"] == {"to_marketo_fills_blank": 1}
    assert job.fields["lead.phone"] == {"to_dynamics_fills_blank": 1}
    assert "lead.lastName" not in job.fields
    assert any("e***@litware.example" in s for s in job.samples["ambiguous"])
    assert all("eve@" not in s for samples in job.samples.values() for s in samples)
    # Nothing written anywhere.
    assert world.system.marketo_admin.persons() == persons_before
    assert world.system.dataverse_admin.rows("lead") == leads_before
    assert world.links() == {}


def test_the_backfill_links_creates_and_reconciles_by_the_first_link_rule(
    world: World, run_backfill: Run
) -> None:
    seed_day_one(world)

    job = run_backfill()

    assert job.status is Status.DONE, job.error
    assert world.linked("ana", "ana")
    assert world.linked("bo", "bo")
    ana_m, ana_d = world.marketo("ana"), world.dynamics("ana")
    assert ana_m["firstName"] == "Ana"  # Dynamics, the system of record, fills Marketo
    assert ana_m["title"] == "CTO"  # a blank in Marketo is filled
    assert ana_d["telephone1"] == "555-0100"  # a blank in Dynamics is filled
    assert ana_m["email"] == "Ana.Lopez@Fabrikam.example"  # the same email, each side's case kept
    assert ana_d["mdsync_marketoid"] == str(world.persons["ana"])
    assert ana_m["msftLeadId"] == world.records["ana"][1]
    assert ana_m["msftType"] == "Lead"
    assert world.marketo("bo")["msftContactId"] == world.records["bo"][1]
    # cy got a person, created once, with the lead's values and its id.
    created = [p for p in world.system.marketo_admin.persons() if p.get("email") == "cy@tailspin.example"]
    assert len(created) == 1
    assert created[0]["title"] == "VP"
    assert created[0]["msftLeadId"] == world.records["cy"][1]
    assert world.links()[created[0]["id"]] == world.records["cy"]
    assert world.dynamics("cy")["mdsync_marketoid"] == str(created[0]["id"])
    # Left alone: the filtered record, both ambiguous records, the Marketo-only person.
    linked_records = set(world.links().values())
    for name in ("dee", "eve-lead", "eve-contact"):
        assert world.records[name] not in linked_records
        assert not world.dynamics(name).get("mdsync_marketoid")
    assert world.persons["fay"] not in world.links()
    assert len(world.system.dataverse_admin.rows("lead")) == 4  # no lead made for fay
    # The ambiguity is in the sync log, with its person.
    log = world.system.deps.state.read_log(marketo_id=world.persons["eve"])
    assert any(e.action == "ambiguous" for e in log), log
    # Shadows: the next change syncs against what both sides hold now.
    shadows = world.system.deps.state.get_shadows([world.persons["ana"]])
    assert shadows[world.persons["ana"]].values["firstName"] == "Ana"


def test_a_second_run_finds_everything_linked_and_in_sync(world: World, run_backfill: Run) -> None:
    seed_day_one(world)
    run_backfill()
    persons = len(world.system.marketo_admin.persons())

    again = run_backfill()

    assert again.status is Status.DONE, again.error
    assert again.counts.get("pairs_by_link") == 3
    assert again.counts.get("persons_to_create", 0) == 0
    assert again.counts.get("pairs_writing_marketo", 0) == 0
    assert again.counts.get("pairs_writing_dynamics", 0) == 0
    assert len(world.system.marketo_admin.persons()) == persons


def test_the_stored_marketo_id_matches_before_the_email(world: World, run_backfill: Run) -> None:
    # The person's email changed since an earlier sync; the record still names the person.
    marketo_id = world.person("gil", email="gil.new@fabrikam.example", lastName="Gil")
    world.person("other", email="gil@fabrikam.example", lastName="Someone else")
    world.record(
        "gil", emailaddress1="gil@fabrikam.example", lastname="Gil", mdsync_marketoid=str(marketo_id)
    )

    job = run_backfill()

    assert job.status is Status.DONE, job.error
    assert job.counts["pairs_by_stored_id"] == 1
    assert world.linked("gil", "gil")
    assert world.persons["other"] not in world.links()


def test_an_admin_rule_links_the_contact_and_reports_the_lead(world: World, run_backfill: Run) -> None:
    world.person("eve", email="eve@litware.example", lastName="Eve")
    world.record("eve-lead", emailaddress1="eve@litware.example", lastname="Eve")
    world.record("eve-contact", "contact", emailaddress1="eve@litware.example", lastname="Eve")

    job = run_backfill(ambiguous="prefer_contact")

    assert job.status is Status.DONE, job.error
    assert world.linked("eve", "eve-contact")
    assert world.records["eve-lead"] not in set(world.links().values())
    assert job.counts["resolved_by_rule"] == 1
    assert any("-> contact:" in s for s in job.samples["ambiguous"])


def test_records_and_persons_already_linked_are_reconciled_against_their_shadow(
    world: World, run_backfill: Run, system: LocalSystem
) -> None:
    world.person("hal", email="hal@contoso.example", lastName="Hal", title="Eng")
    world.record("hal", emailaddress1="hal@contoso.example", lastname="Hal", jobtitle="Eng")
    run_backfill()
    # Marketo changed while nothing listened (a poller stopped for months): a repair.
    system.marketo_admin.user_edit(world.persons["hal"], {"title": "Principal Eng"})

    job = run_backfill()

    assert job.status is Status.DONE, job.error
    assert job.counts["pairs_by_link"] == 1
    assert world.dynamics("hal")["jobtitle"] == "Principal Eng"  # changed on one side: copied
