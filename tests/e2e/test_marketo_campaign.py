"""Marketo -> Dynamics in seconds: the change campaign calls the host, the worker syncs, no poll."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mdsync.harness import LocalSystem

LEAD = {"firstname": "Ana", "lastname": "Lopez", "emailaddress1": "ana@fabrikam.example", "subject": "Web"}


def linked_person(system: LocalSystem) -> tuple[str, int]:
    lead_id = system.dataverse_admin.create_as("Jane Doe", "leads", LEAD)
    system.sync()  # the person created, and the poller past its creation
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


# --- Marketo's side from the notices, without a read ----------------------------------------------

READ = "GET /rest/v1/leads.json"


def synced_an_hour_ago(system: LocalSystem, marketo_id: int) -> None:
    """The pair's shadow as a sync an hour ago left it (its view of Marketo is that old)."""
    state = system.deps.state
    shadow = state.get_shadows({marketo_id})[marketo_id]
    values = dict(shadow.values)
    values["@seen"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    state.put_shadows([replace(shadow, values=values)])


def reads(system: LocalSystem) -> int:
    return system.deps.marketo.calls.snapshot().get(READ, 0)


@pytest.mark.parametrize("via", ["campaign", "poll"])
def test_a_marketo_change_is_synced_from_the_values_its_notice_carries_without_reading_marketo(
    system: LocalSystem, via: str
) -> None:
    lead_id, marketo_id = linked_person(system)
    synced_an_hour_ago(system, marketo_id)
    if via == "campaign":
        system.register_change_campaign()
    before = reads(system)

    system.marketo_admin.user_edit(marketo_id, {"title": "CTO", "city": "Lyon"})
    system.sync(poll=via == "poll")

    row = system.dataverse_admin.row("lead", lead_id)
    assert row is not None
    assert (row["jobtitle"], row["address1_city"]) == ("CTO", "Lyon")
    assert reads(system) == before


def test_a_change_soon_after_the_last_sync_is_read(system: LocalSystem) -> None:
    lead_id, marketo_id = linked_person(system)  # synced seconds ago
    before = reads(system)

    system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
    system.sync()

    assert (system.dataverse_admin.row("lead", lead_id) or {})["jobtitle"] == "CTO"
    assert reads(system) == before + 1


def test_a_collision_is_decided_on_a_fresh_read(system: LocalSystem) -> None:
    lead_id, marketo_id = linked_person(system)
    synced_an_hour_ago(system, marketo_id)
    before = reads(system)

    system.dataverse_admin.pause_webhooks(True)  # the Dynamics edit's notice comes later
    try:
        system.dataverse_admin.update_as("Jane Doe", "leads", lead_id, {"jobtitle": "VP"})
        system.marketo_admin.user_edit(marketo_id, {"title": "CTO"})
        system.poll()
        system.until(lambda: (system.dataverse_admin.row("lead", lead_id) or {})["jobtitle"] == "CTO")
    finally:
        system.dataverse_admin.pause_webhooks(False)
    system.sync()

    # Marketo wins a lead's collision; its value was read, not taken on trust.
    assert (system.dataverse_admin.row("lead", lead_id) or {})["jobtitle"] == "CTO"
    assert system.marketo_admin.person(marketo_id)["title"] == "CTO"
    assert reads(system) > before
