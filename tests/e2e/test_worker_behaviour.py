"""Every row of the product's behaviour table (BRIEF.md) but the flow step's, end to end: users
edit the simulators, webhooks and the poller capture the changes, the local host runs the real
sync worker, and the test reads both systems and the sync log."""

from __future__ import annotations

from pathlib import Path

from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import (
    USER,
    actions,
    create_linked,
    log_of,
    mapping_edited,
    person,
    person_of,
    row,
    update_as_user,
    webhooks_held,
)

# --- the sync is bidirectional ---------------------------------------------------------------


def test_a_lead_edit_in_dynamics_reaches_marketo_and_back(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana", companyname="Contoso")
    update_as_user(system, "lead", lead_id, jobtitle="CFO", companyname="Fabrikam")
    system.sync()
    assert person(system, marketo_id)["title"] == "CFO"
    assert person(system, marketo_id)["company"] == "Fabrikam"
    system.marketo_admin.user_edit(marketo_id, {"city": "Lisbon", "leadSource": "Trade Show"})
    system.sync()
    after = row(system, "lead", lead_id)
    assert after["address1_city"] == "Lisbon"
    assert after["leadsourcecode"] == 7
    entry = next(e for e in log_of(system, marketo_id) if e.action == "to_dynamics")
    assert "city (changed in Marketo)" in entry.detail
    assert "leadSource" in entry.detail


def test_a_contact_edit_in_either_system_reaches_the_other(system: LocalSystem) -> None:
    contact_id, marketo_id = create_linked(system, "contact", firstname="Bo")
    assert person(system, marketo_id)["msftType"] == "Contact"
    assert person(system, marketo_id)["msftContactId"] == contact_id
    update_as_user(system, "contact", contact_id, telephone1="+351 555 0100")
    system.sync()
    assert person(system, marketo_id)["phone"] == "+351 555 0100"
    system.marketo_admin.user_edit(marketo_id, {"firstName": "Bob"})
    system.sync()
    assert row(system, "contact", contact_id)["firstname"] == "Bob"


def test_only_mapped_fields_sync(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana")
    before = log_of(system, marketo_id)
    update_as_user(system, "lead", lead_id, description="met at the fair")
    system.marketo_admin.user_edit(marketo_id, {"unsubscribed": True})
    system.sync()
    assert log_of(system, marketo_id) == before
    assert person(system, marketo_id)["unsubscribed"] is True
    assert "description" not in person(system, marketo_id)


def test_a_field_syncs_only_in_its_mapped_direction(system: LocalSystem, tmp_path: Path) -> None:
    one_way = {
        "{marketo: title,          dynamics: jobtitle,         type: string}": (
            "{marketo: title, dynamics: jobtitle, type: string, direction: to_marketo}"
        )
    }
    with mapping_edited(system, tmp_path, one_way):
        lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
        system.marketo_admin.user_edit(marketo_id, {"title": "Marketing Lead"})
        system.sync()
        assert row(system, "lead", lead_id)["jobtitle"] == "Engineer"
        update_as_user(system, "lead", lead_id, jobtitle="Sales Lead")
        system.sync()
        # Dynamics is the field's only source: its change wins even on a lead.
        assert person(system, marketo_id)["title"] == "Sales Lead"


# --- collisions ------------------------------------------------------------------------------


def test_a_collision_on_a_lead_goes_to_marketo(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer", firstname="Ana")
    with webhooks_held(system):
        update_as_user(system, "lead", lead_id, jobtitle="Sales Lead", firstname="Anna")
        system.marketo_admin.user_edit(marketo_id, {"title": "Marketing Lead"})
    system.sync()
    assert row(system, "lead", lead_id)["jobtitle"] == "Marketing Lead"
    assert person(system, marketo_id)["title"] == "Marketing Lead"
    # The field changed on one side only is simply copied.
    assert person(system, marketo_id)["firstName"] == "Anna"
    (collision,) = [e for e in log_of(system, marketo_id) if e.action == "collision"]
    assert collision.fields == ("title",)
    assert "marketo wins (entity rule)" in collision.detail


def test_a_collision_on_a_contact_goes_to_dynamics(system: LocalSystem) -> None:
    contact_id, marketo_id = create_linked(system, "contact", jobtitle="Engineer")
    with webhooks_held(system):
        update_as_user(system, "contact", contact_id, jobtitle="Sales Lead")
        system.marketo_admin.user_edit(marketo_id, {"title": "Marketing Lead"})
    system.sync()
    assert row(system, "contact", contact_id)["jobtitle"] == "Sales Lead"
    assert person(system, marketo_id)["title"] == "Sales Lead"
    (collision,) = [e for e in log_of(system, marketo_id) if e.action == "collision"]
    assert "dynamics wins" in collision.detail


# --- deletes ---------------------------------------------------------------------------------


def test_a_dynamics_delete_flags_the_person_and_drops_the_link(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana")
    system.dataverse_admin.delete_as(USER, "leads", lead_id)
    system.sync()
    flagged = person(system, marketo_id)
    assert flagged["msftIsDeleted"] is True
    assert flagged["msftLeadId"] is None
    assert system.deps.state.get_links_by_marketo([marketo_id]) == {}
    assert "unlinked" in actions(system, marketo_id)
    # The person stays and keeps its values; later Marketo edits go nowhere.
    system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
    system.sync()
    assert system.dataverse_admin.rows("lead") == []


def test_a_marketo_delete_drops_the_link_and_a_later_update_makes_a_new_person(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana", emailaddress1="ana@fabrikam.example")
    system.marketo_admin.user_delete(marketo_id)
    system.sync()
    kept = row(system, "lead", lead_id)
    assert kept["firstname"] == "Ana"
    assert kept.get("mdsync_marketoid") is None
    assert system.deps.state.get_links_by_marketo([marketo_id]) == {}
    # Our own clearing of the link column is not "an update": no person is created for it.
    assert system.marketo_admin.persons() == []
    update_as_user(system, "lead", lead_id, jobtitle="CTO")
    system.sync()
    (new,) = system.marketo_admin.persons()
    assert new["id"] != marketo_id
    assert new["email"] == "ana@fabrikam.example"
    assert new["title"] == "CTO"
    assert row(system, "lead", lead_id)["mdsync_marketoid"] == str(new["id"])


# --- new records -----------------------------------------------------------------------------


def test_a_new_marketo_person_is_not_pushed(system: LocalSystem) -> None:
    marketo_id = system.marketo_admin.user_create({"email": "new@fabrikam.example", "lastName": "New"})
    system.sync()
    assert system.dataverse_admin.rows("lead") == []
    assert system.dataverse_admin.rows("contact") == []
    (entry,) = log_of(system, marketo_id)
    assert entry.action == "skipped"
    assert "flow step" in entry.detail


def test_a_new_dynamics_lead_creates_a_person(system: LocalSystem) -> None:
    lead_id = system.dataverse_admin.create_as(
        USER,
        "leads",
        {
            "firstname": "Ana",
            "lastname": "Lopez",
            "emailaddress1": "Ana@Fabrikam.example",
            "leadsourcecode": 8,
        },
    )
    system.sync()
    (created,) = system.marketo_admin.persons()
    assert created["firstName"] == "Ana"
    assert created["leadSource"] == "Web"
    assert created["msftType"] == "Lead"
    assert created["msftLeadId"] == lead_id
    assert row(system, "lead", lead_id)["mdsync_marketoid"] == str(created["id"])
    assert actions(system, created["id"])[-1] == "created_in_marketo"


def test_a_new_dynamics_contact_links_the_person_with_the_same_email(system: LocalSystem) -> None:
    existing = system.marketo_admin.user_create(
        {"email": "bo@fabrikam.example", "firstName": "Bo", "lastName": "Berg", "title": "CEO"}
    )
    system.sync()
    contact_id = system.dataverse_admin.create_as(
        USER, "contacts", {"lastname": "Berg", "emailaddress1": "BO@fabrikam.example", "telephone1": "555"}
    )
    system.sync()
    assert [p["id"] for p in system.marketo_admin.persons()] == [existing]
    assert person_of(system, "contact", contact_id) == existing
    linked = person(system, existing)
    assert linked["phone"] == "555"
    assert linked["msftContactId"] == contact_id
    # First sync of the pair: empty sides are filled, nothing is lost.
    after = row(system, "contact", contact_id)
    assert after["firstname"] == "Bo"
    assert after["jobtitle"] == "CEO"


def test_a_second_record_with_a_linked_email_gets_its_own_person(system: LocalSystem) -> None:
    lead_id, first = create_linked(system, "lead", emailaddress1="same@fabrikam.example")
    contact_id = system.dataverse_admin.create_as(
        USER, "contacts", {"lastname": "Other", "emailaddress1": "same@fabrikam.example"}
    )
    system.sync()
    second = person_of(system, "contact", contact_id)
    assert second != first
    assert person_of(system, "lead", lead_id) == first
    assert person(system, second)["email"] == "same@fabrikam.example"
    assert person(system, second)["lastName"] == "Other"


def test_the_sync_filter_excludes_records(system: LocalSystem) -> None:
    lead_id = system.dataverse_admin.create_as(
        USER,
        "leads",
        {"lastname": "Quiet", "emailaddress1": "quiet@fabrikam.example", "new_synctomkto": False},
    )
    system.sync()
    assert system.marketo_admin.persons() == []
    update_as_user(system, "lead", lead_id, new_synctomkto=True)
    system.sync()
    (created,) = system.marketo_admin.persons()
    assert created["lastName"] == "Quiet"
    # A linked record that is filtered out later stops syncing.
    update_as_user(system, "lead", lead_id, new_synctomkto=False, jobtitle="Hidden")
    system.sync()
    assert person(system, created["id"]).get("title") is None


# --- qualification ---------------------------------------------------------------------------


def test_a_qualified_lead_moves_its_person_to_the_contact(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana", jobtitle="Engineer")
    (contact,) = system.dataverse_admin.qualify_as(USER, lead_id)
    contact_id = str(contact["contactid"])
    system.sync()
    assert person_of(system, "contact", contact_id) == marketo_id
    moved = person(system, marketo_id)
    assert moved["msftType"] == "Contact"
    assert moved["msftContactId"] == contact_id
    assert moved["msftLeadId"] == lead_id
    assert len(system.marketo_admin.persons()) == 1
    assert row(system, "contact", contact_id)["mdsync_marketoid"] == str(marketo_id)
    assert "relinked" in actions(system, marketo_id)
    # From now on the contact rules apply: Dynamics wins a collision.
    with webhooks_held(system):
        update_as_user(system, "contact", contact_id, jobtitle="Sales Lead")
        system.marketo_admin.user_edit(marketo_id, {"title": "Marketing Lead"})
    system.sync()
    assert person(system, marketo_id)["title"] == "Sales Lead"
    # And the qualified lead no longer syncs anywhere.
    update_as_user(system, "lead", lead_id, jobtitle="Old Lead")
    system.sync()
    assert person(system, marketo_id)["title"] == "Sales Lead"
    assert len(system.marketo_admin.persons()) == 1


def test_a_qualification_whose_contact_notice_was_lost_is_followed(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", firstname="Ana")
    system.sweep()  # the first run only sets the sweep's starting point
    system.dataverse_admin.drop_webhooks(10)
    (contact,) = system.dataverse_admin.qualify_as(USER, lead_id)
    system.wait_idle()
    system.dataverse_admin.clear_faults()
    # The sweep reports the lead's state change; the worker finds the contact from it.
    system.sweep()
    system.sync()
    assert person_of(system, "contact", str(contact["contactid"])) == marketo_id
    assert person(system, marketo_id)["msftType"] == "Contact"
