"""Issue 17, items 1-5 and 8: links that move (qualification, merges, first links, deletions)
and values Marketo does not take, end to end through the local system. Each test is named for
its item and failed on the code before the fix."""

from __future__ import annotations

from pathlib import Path

from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import (
    USER,
    actions,
    create_linked,
    failure_activities,
    log_of,
    mapping_extended,
    person,
    person_of,
    row,
    update_as_user,
)

NOTES = {"marketo": "personNotes", "dynamics": "description"}


# --- item 1: a relink is a first link, not "cleared in Dynamics" ----------------------------------


def test_item_01_qualifying_a_lead_keeps_the_marketo_values_the_contact_lacks(
    system: LocalSystem, tmp_path: Path
) -> None:
    with mapping_extended(system, tmp_path, lead=[NOTES], contact=[NOTES]):
        lead_id, marketo_id = create_linked(system, "lead", firstname="Ana", description="Met at the fair")
        assert person(system, marketo_id)["personNotes"] == "Met at the fair"
        # Qualifying copies the name, email, phones, address: not the description.
        (contact,) = system.dataverse_admin.qualify_as(USER, lead_id)
        contact_id = str(contact["contactid"])
        assert row(system, "contact", contact_id).get("description") is None
        system.sync()

        assert person_of(system, "contact", contact_id) == marketo_id
        assert person(system, marketo_id)["personNotes"] == "Met at the fair"  # not cleared
        assert row(system, "contact", contact_id)["description"] == "Met at the fair"  # filled
        relinked = next(e for e in log_of(system, marketo_id) if e.action == "relinked")
        assert "qualified" in relinked.detail


# --- item 2: the shadow holds what Marketo really holds -----------------------------------------


def test_item_02_a_value_marketo_did_not_take_is_reported_and_never_copied_back(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", leadsourcecode=8, jobtitle="Engineer")
    assert person(system, marketo_id)["leadSource"] == "Web"
    system.marketo_admin.block_field_updates("leadSource", ["Web service API"])
    try:
        # A sales rep corrects the source (and the title, whose echo comes back from Marketo).
        update_as_user(system, "lead", lead_id, leadsourcecode=4, jobtitle="CTO")
        system.sync()
        assert person(system, marketo_id)["title"] == "CTO"
        assert person(system, marketo_id)["leadSource"] == "Web"  # Marketo kept its value
        assert row(system, "lead", lead_id)["leadsourcecode"] == 4  # the rep's edit stays
        (report,) = failure_activities(system, marketo_id)
        assert report["errorCode"] == "mdsync-not-taken"
        assert "Block Field Updates" in report["errorMessage"]
        assert report["direction"] == "to_marketo"

        # The next change of the person must not copy Marketo's old value back, nor re-report.
        system.marketo_admin.user_edit(marketo_id, {"city": "Lisbon"})
        update_as_user(system, "lead", lead_id, mobilephone="555 0101")
        system.sync()
        after = row(system, "lead", lead_id)
        assert (after["leadsourcecode"], after["address1_city"]) == (4, "Lisbon")
        assert person(system, marketo_id)["mobilePhone"] == "555 0101"
        assert len(failure_activities(system, marketo_id)) == 1  # reported once: no ping-pong

        # A Marketo user changing the field is a change like any other: it reaches Dynamics.
        system.marketo_admin.user_edit(marketo_id, {"leadSource": "Partner"})
        system.sync()
        assert row(system, "lead", lead_id)["leadsourcecode"] == 4
        system.marketo_admin.user_edit(marketo_id, {"leadSource": "Seminar"})
        system.sync()
        assert row(system, "lead", lead_id)["leadsourcecode"] == 6
    finally:
        system.marketo_admin.unblock_field_updates("leadSource")


# --- item 3: a Marketo edit between mdsync's read and its write -------------------------------------


def _race(system: LocalSystem, entity: str) -> tuple[str, int]:
    """A Dynamics user edits the title; while the worker is between its Marketo read and its
    Marketo write (held back by latency), a Marketo user types another title."""
    record_id, marketo_id = create_linked(system, entity, jobtitle="Engineer")
    calls = system.deps.marketo.calls
    reads = calls["GET /rest/v1/leads.json"]
    writes = calls["POST /rest/v1/leads.json"]
    # The worker's Marketo read, then its write: held long enough for the user's edit to land
    # first however loaded the machine is (the test sees the read once it has answered).
    system.marketo_admin.inject_latency(1500, count=1)
    system.marketo_admin.inject_latency(8000, count=1)
    update_as_user(system, entity, record_id, jobtitle="From Dynamics")
    system.until(lambda: calls["GET /rest/v1/leads.json"] > reads)
    system.marketo_admin.user_edit(marketo_id, {"title": "Typed in Marketo"})
    system.until(lambda: calls["POST /rest/v1/leads.json"] > writes)
    system.sync()
    return record_id, marketo_id


def test_item_03_a_marketo_edit_overwritten_by_mdsyncs_write_is_restored_for_a_lead(
    system: LocalSystem,
) -> None:
    lead_id, marketo_id = _race(system, "lead")
    # Marketo wins a collision on a lead: the user's value comes back, on both sides.
    assert person(system, marketo_id)["title"] == "Typed in Marketo"
    assert row(system, "lead", lead_id)["jobtitle"] == "Typed in Marketo"
    (collision,) = [e for e in log_of(system, marketo_id) if e.action == "collision"]
    assert "between mdsync's read and its write" in collision.detail
    assert "marketo wins" in collision.detail
    # The console shows the value the write overwrote, not mdsync's own.
    assert collision.values == {
        "marketo": "Typed in Marketo",
        "dynamics": "From Dynamics",
        "winner": "marketo",
    }


def test_item_03_on_a_contact_the_collision_rule_keeps_the_dynamics_value_and_logs_it(
    system: LocalSystem,
) -> None:
    contact_id, marketo_id = _race(system, "contact")
    assert person(system, marketo_id)["title"] == "From Dynamics"
    assert row(system, "contact", contact_id)["jobtitle"] == "From Dynamics"
    (collision,) = [e for e in log_of(system, marketo_id) if e.action == "collision"]
    assert "dynamics wins" in collision.detail
    assert collision.values == {
        "marketo": "Typed in Marketo",
        "dynamics": "From Dynamics",
        "winner": "dynamics",
    }


# --- item 4: Marketo merges, deletions confirmed, mass disappearance ---------------------------------


def test_item_04_a_marketo_merge_moves_the_link_to_the_winner_instead_of_duplicating(
    system: LocalSystem,
) -> None:
    lead_id, loser = create_linked(system, "lead", firstname="Ana", emailaddress1="ana@fabrikam.example")
    winner = system.marketo_admin.user_create(
        {"email": "ana@fabrikam.example", "lastName": "Lopez", "city": "Porto"}
    )
    system.sync()
    system.marketo_admin.user_merge(winner, [loser])
    system.sync()

    assert person_of(system, "lead", lead_id) == winner
    assert row(system, "lead", lead_id)["mdsync_marketoid"] == str(winner)
    merged = person(system, winner)
    assert (merged["msftLeadId"], merged["firstName"]) == (lead_id, "Ana")
    assert row(system, "lead", lead_id)["address1_city"] == "Porto"  # first link: blank filled
    # The next Dynamics edit reaches the winner; no second person appears.
    update_as_user(system, "lead", lead_id, jobtitle="CFO")
    system.sync()
    assert person(system, winner)["title"] == "CFO"
    assert [p["id"] for p in system.marketo_admin.persons()] == [winner]


def test_item_04_a_person_is_unlinked_only_once_its_deletion_is_confirmed(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana")
    system.marketo_admin.user_delete(marketo_id)
    # A Dynamics edit reaches the worker before the poller has read the deletion: the person is
    # missing from the read, but nothing says it was deleted (or merged) yet.
    update_as_user(system, "lead", lead_id, jobtitle="CTO")
    system.until(lambda: "rescheduled" in actions(system, marketo_id))
    assert system.deps.state.get_links_by_marketo([marketo_id]) != {}  # held, not unlinked
    assert row(system, "lead", lead_id)["mdsync_marketoid"] == str(marketo_id)
    # Once Get Deleted Leads reports it, the link is dropped; the edit, made after the deletion,
    # then makes a new person, as a later Dynamics update does (the product's behaviour table).
    system.poll()
    system.wait_idle()
    assert system.deps.state.get_links_by_marketo([marketo_id]) == {}
    assert "unlinked" in actions(system, marketo_id)
    (new,) = system.marketo_admin.persons()
    assert new["title"] == "CTO"
    assert row(system, "lead", lead_id)["mdsync_marketoid"] == str(new["id"])


def test_item_04_an_edit_read_in_the_same_batch_as_the_deletion_still_makes_a_new_person(
    system: LocalSystem,
) -> None:
    """The previous test's edit, when its notice (or its retry) and the deletion reach the worker
    together: the unlink used to consume the edit, and the echo of clearing the link column then
    looked like mdsync's own last change, so no person was made (issue 12, item 6: the previous
    test failed on a loaded machine when the retry came due as the poll queued the deletion)."""
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana")
    system.marketo_admin.user_delete(marketo_id)
    with system.worker_held():
        update_as_user(system, "lead", lead_id, jobtitle="CTO")
        system.webhooks_delivered()
        system.poll()  # the deletion is queued beside the edit: one batch
    system.wait_idle()

    assert system.deps.state.get_links_by_marketo([marketo_id]) == {}
    assert "unlinked" in actions(system, marketo_id)
    (new,) = system.marketo_admin.persons()
    assert (new["title"], new["firstName"]) == ("CTO", "Ana")
    assert person_of(system, "lead", lead_id) == new["id"]
    assert row(system, "lead", lead_id)["mdsync_marketoid"] == str(new["id"])


def test_item_04_a_mass_disappearance_stops_and_alerts_instead_of_unlinking(system: LocalSystem) -> None:
    pairs = [create_linked(system, "lead", firstname=f"P{i}") for i in range(12)]
    # The API user's role no longer reaches the partition these persons are in.
    system.marketo_admin.move_to_partition([m for _, m in pairs], 2)
    system.marketo_admin.set_api_partitions([1])
    try:
        with system.worker_held():
            for lead_id, _ in pairs:
                update_as_user(system, "lead", lead_id, jobtitle="Moved")
            system.webhooks_delivered()  # all twelve notices queued: one batch
        system.wait_idle()  # retried, then parked: the links are kept
        links = system.deps.state.get_links_by_marketo(m for _, m in pairs)
        assert len(links) == 12
        assert all(row(system, "lead", lead)["mdsync_marketoid"] == str(m) for lead, m in pairs)
        assert len(system.marketo_admin.persons()) == 12  # no person created for a "new" record
        alerts = [e for e in system.deps.state.read_log(limit=500) if e.action == "alert"]
        assert alerts
        assert "vanished from Marketo" in alerts[0].detail
        parked = system.deps.state.parked()
        assert parked
        assert all("no deletion or merge" in p.reason for p in parked)
    finally:
        system.marketo_admin.set_api_partitions(None)
    # Access back: the next edits sync to the same persons.
    update_as_user(system, "lead", pairs[0][0], jobtitle="Back")
    system.sync()
    assert person(system, pairs[0][1])["title"] == "Back"


# --- item 5: the flow step after a person was deleted and created again -------------------------------


def test_item_05_the_flow_step_links_the_record_of_a_deleted_and_recreated_person(
    system: LocalSystem,
) -> None:
    lead_id, old = create_linked(system, "lead", emailaddress1="ana@fabrikam.example")
    system.marketo_admin.user_delete(old)  # the sync has not seen the deletion yet
    new = system.marketo_admin.user_create({"email": "ana@fabrikam.example", "lastName": "Lopez"})

    answer = system.fire_flow_step(new)

    assert answer["status"] == 200
    assert system.marketo_admin.person(new)["mdsyncFlowStepStatus"] == "exists"
    (lead,) = system.dataverse_admin.rows("lead")
    assert lead["leadid"] == lead_id
    assert lead["mdsync_marketoid"] == str(new)
    assert person_of(system, "lead", lead_id) == new
    system.sync()  # the deletion, read later, changes nothing
    assert person_of(system, "lead", lead_id) == new
    assert len(system.dataverse_admin.rows("lead")) == 1


# --- item 8: a first link to an existing person -------------------------------------------------------


def test_item_08_a_first_link_lets_what_sales_typed_fill_marketo_and_blanks_overwrite_nothing(
    system: LocalSystem,
) -> None:
    existing = system.marketo_admin.user_create(
        {"email": "bo@fabrikam.example", "lastName": "Berg", "title": "Old title", "city": "Porto"}
    )
    system.sync()
    lead_id = system.dataverse_admin.create_as(
        USER,
        "leads",
        {
            "lastname": "Berg",
            "firstname": "Bo",
            "emailaddress1": "bo@fabrikam.example",
            "jobtitle": "VP Sales",
        },
    )
    system.sync()

    assert person_of(system, "lead", lead_id) == existing
    linked = person(system, existing)
    assert (linked["title"], linked["firstName"], linked["city"]) == ("VP Sales", "Bo", "Porto")
    after = row(system, "lead", lead_id)
    assert (after["jobtitle"], after["address1_city"]) == ("VP Sales", "Porto")
    assert not [e for e in log_of(system, existing) if e.action == "collision"]


def test_item_08_the_first_link_rule_is_configurable(system: LocalSystem, tmp_path: Path) -> None:
    with mapping_extended(system, tmp_path, options={"first_link": "marketo"}):
        existing = system.marketo_admin.user_create(
            {"email": "cy@fabrikam.example", "lastName": "Cole", "title": "Marketing title"}
        )
        system.sync()
        lead_id = system.dataverse_admin.create_as(
            USER,
            "leads",
            {"lastname": "Cole", "emailaddress1": "cy@fabrikam.example", "jobtitle": "Sales title"},
        )
        system.sync()
        assert person_of(system, "lead", lead_id) == existing
        assert row(system, "lead", lead_id)["jobtitle"] == "Marketing title"
        assert person(system, existing)["title"] == "Marketing title"
