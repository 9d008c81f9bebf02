"""Marketo -> Dynamics in seconds: the change campaign calls the host, the worker syncs, no poll."""

from __future__ import annotations

from mdsync.harness import LocalSystem

LEAD = {"firstname": "Ana", "lastname": "Lopez", "emailaddress1": "ana@fabrikam.example", "subject": "Web"}


def linked_person(system: LocalSystem) -> tuple[str, int]:
    lead_id = system.dataverse_admin.create_as("Jane Doe", "leads", LEAD)
    system.wait_idle()
    (person,) = system.marketo_admin.persons()
    return lead_id, int(person["id"])


def test_a_marketo_edit_reaches_dynamics_through_the_campaign_without_a_poll(system: LocalSystem) -> None:
    lead_id, marketo_id = linked_person(system)
    system.register_change_campaign()

    system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
    system.wait_idle()  # the campaign's webhook, the host, the worker; no poll

    row = system.dataverse_admin.row("lead", lead_id)
    assert row is not None
    assert row["jobtitle"] == "CTO"
    assert system.marketo_admin.campaigns()["runs"] == 1  # mdsync's own writes did not run it


def test_the_poller_catches_what_the_campaign_has_not_delivered_and_the_late_call_changes_nothing(
    system: LocalSystem,
) -> None:
    lead_id, marketo_id = linked_person(system)
    system.register_change_campaign()
    system.marketo_admin.pause_campaigns(True)  # Marketo's campaign queue is behind

    system.marketo_admin.user_edit(marketo_id, {"city": "Lyon"})
    system.poll()
    system.until(lambda: (system.dataverse_admin.row("lead", lead_id) or {}).get("address1_city") == "Lyon")
    system.dataverse_admin.update_as("Jane Doe", "leads", lead_id, {"address1_city": "Paris"})
    system.until(lambda: system.marketo_admin.person(marketo_id)["city"] == "Paris")  # campaigns held
    system.marketo_admin.pause_campaigns(False)  # the late run reports the person as it is now
    system.wait_idle()

    row = system.dataverse_admin.row("lead", lead_id)
    assert row is not None
    assert row["address1_city"] == "Paris"
    assert system.marketo_admin.person(marketo_id)["city"] == "Paris"
