"""What the flow step does for each kind of person: created, exists, linked by email, restored,
re-created after a delete. Through the function (host or direct call), against the simulators."""

from __future__ import annotations

import pytest

from mdsync.harness import LocalSystem
from shared.flow_step import SyncPersonToMicrosoft
from shared.ports import Link

from .conftest import call, leads, leads_of, linked, new_person, post, snapshot

LEAD_QUALIFIED, LEAD_DISQUALIFIED = 1, 2


def test_creates_a_lead_from_the_persons_fields_and_links_both_ways(system: LocalSystem) -> None:
    pid = new_person(
        system, email="Ana.Lopez@Fabrikam.example", title="CTO", phone="+1 425 555 0100", leadSource="Web"
    )

    answer = post(system, {"marketoId": pid, "email": "ignored@example.com"})

    assert answer.status == 200
    assert answer.body["status"] == "created"
    assert answer.body["entity"] == "lead"
    (lead,) = leads(system)
    assert answer.body["dynamicsId"] == lead["leadid"]
    assert lead["mdsync_marketoid"] == str(pid)
    assert (lead["firstname"], lead["lastname"], lead["companyname"]) == ("Ana", "Lopez", "Fabrikam")
    assert (
        lead["emailaddress1"] == "Ana.Lopez@Fabrikam.example"
    )  # read from Marketo (as typed), not the request
    assert (lead["jobtitle"], lead["telephone1"], lead["leadsourcecode"]) == ("CTO", "+1 425 555 0100", 8)
    person = system.marketo_admin.person(pid)
    assert (person["msftType"], person["msftLeadId"]) == ("Lead", lead["leadid"])
    assert person["msftDoNotEmail"] is False  # the new lead's default, copied back with the link
    assert linked(system, pid) == ("lead", lead["leadid"])


def test_the_lead_s_own_notice_finds_nothing_left_to_write(system: LocalSystem) -> None:
    """The create fires the Dataverse webhook; the worker reconciles it and writes nothing."""
    pid = new_person(system, email="ana@fabrikam.example")
    worker_reads = system.deps.dataverse.calls.total
    assert post(system, {"marketoId": pid}).body["status"] == "created"
    (lead,) = leads(system)
    person = system.marketo_admin.person(pid)

    system.wait_idle()

    assert system.deps.dataverse.calls.total > worker_reads  # the worker did reconcile the pair
    assert leads(system) == [lead]
    assert system.marketo_admin.person(pid)["updatedAt"] == person["updatedAt"]
    assert len(system.marketo_admin.persons()) == 1


def test_created_path_api_calls(system: LocalSystem, flow: SyncPersonToMicrosoft) -> None:
    """One created call, once the process is warm: read the person, one $batch lookup (leads
    and contacts), the create, one write of the link fields."""
    warm_up = new_person(system, email="warm@fabrikam.example")
    assert flow.run(warm_up).status == "created"
    pid = new_person(system, email="ana@fabrikam.example")
    marketo_before, dataverse_before = flow.marketo.calls.snapshot(), flow.dataverse.calls.snapshot()

    assert flow.run(pid).status == "created"

    marketo = _delta(marketo_before, flow.marketo.calls.snapshot())
    dataverse = _delta(dataverse_before, flow.dataverse.calls.snapshot())
    assert marketo == {"GET /rest/v1/leads.json": 1, "POST /rest/v1/leads.json": 1}
    assert dataverse == {"POST $batch": 1, "PATCH leads()": 1}


def test_exists_when_the_person_has_a_live_linked_lead(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    pid = new_person(system, email="ana@fabrikam.example", title="CTO")
    lead_id = post(system, {"marketoId": pid}).body["dynamicsId"]
    system.wait_idle()
    system.marketo_admin.user_edit(pid, {"title": "CEO"})  # not synced yet: no poll
    before = snapshot(system)
    marketo_calls, dataverse_calls = flow.marketo.calls.total, flow.dataverse.calls.total

    answer = post(system, {"marketoId": pid})

    assert answer.status == 200
    assert answer.body == {"status": "exists", "dynamicsId": lead_id, "entity": "lead"}
    assert snapshot(system) == before  # never forces a sync of an existing record
    assert leads(system)[0]["jobtitle"] == "CTO"
    assert (flow.marketo.calls.total, flow.dataverse.calls.total) == (marketo_calls, dataverse_calls + 1)


def test_links_an_unlinked_contact_with_the_same_email_without_writing_its_fields(
    system: LocalSystem,
) -> None:
    (contact_id,) = system.dataverse_admin.seed(
        "contact", [{"firstname": "Ann", "lastname": "López", "emailaddress1": "ANA@fabrikam.example"}]
    )
    system.dataverse_admin.seed("lead", [{"lastname": "Lopez", "emailaddress1": "ana@fabrikam.example"}])
    pid = new_person(system, email="ana@fabrikam.example")

    answer = post(system, {"marketoId": pid})

    assert answer.body == {"status": "exists", "dynamicsId": contact_id, "entity": "contact"}
    contact = system.dataverse_admin.row("contact", contact_id)
    assert contact is not None
    assert contact["mdsync_marketoid"] == str(pid)
    assert (contact["firstname"], contact["lastname"]) == ("Ann", "López")  # no mapped field written
    assert leads_of(system, pid) == []  # contacts win over leads, and nothing is created
    person = system.marketo_admin.person(pid)
    assert (person["msftType"], person["msftContactId"]) == ("Contact", contact_id)
    assert linked(system, pid) == ("contact", contact_id)


def test_links_an_unlinked_open_lead_with_the_same_email(system: LocalSystem) -> None:
    (lead_id,) = system.dataverse_admin.seed(
        "lead", [{"lastname": "Lopez", "emailaddress1": "ana@fabrikam.example", "jobtitle": "Buyer"}]
    )
    pid = new_person(system, email="ana@fabrikam.example", title="CTO")

    answer = post(system, {"marketoId": pid})

    assert answer.body == {"status": "exists", "dynamicsId": lead_id, "entity": "lead"}
    (lead,) = leads(system)
    assert (lead["mdsync_marketoid"], lead["jobtitle"]) == (str(pid), "Buyer")
    assert system.marketo_admin.person(pid)["msftLeadId"] == lead_id


def test_records_that_are_linked_closed_or_taken_are_not_matched(system: LocalSystem) -> None:
    email = {"emailaddress1": "ana@fabrikam.example", "lastname": "Lopez"}
    (other,) = system.marketo_admin.seed_persons([{"email": "ana@fabrikam.example", "lastName": "Other"}])
    other_ids = system.dataverse_admin.seed(
        "lead",
        [
            {**email, "mdsync_marketoid": str(other)},  # linked to another person, who exists
            {**email, "statecode": LEAD_DISQUALIFIED, "statuscode": 6},  # closed
            email,  # column empty, but linked to another person in the state store
        ],
    )
    system.deps.state.put_link(Link(999998, "lead", other_ids[2]))
    pid = new_person(system, email="ana@fabrikam.example")

    answer = post(system, {"marketoId": pid})

    assert answer.body["status"] == "created"
    assert answer.body["dynamicsId"] not in other_ids
    assert [r["leadid"] for r in leads_of(system, pid)] == [answer.body["dynamicsId"]]


def test_match_on_email_can_be_turned_off(system: LocalSystem) -> None:
    system.dataverse_admin.seed("contact", [{"lastname": "Lopez", "emailaddress1": "ana@fabrikam.example"}])
    pid = new_person(system, email="ana@fabrikam.example")
    deps = system.deps
    options = deps.mapping.options.model_copy(update={"match_on_email": False})
    mapping = deps.mapping.model_copy(update={"options": options})
    flow = deps.build_flow_step(mapping=mapping)

    outcome = flow.run(pid)

    assert (outcome.status, outcome.entity) == ("created", "lead")
    assert system.dataverse_admin.rows("contact")[0].get("mdsync_marketoid") is None


def test_a_lost_link_is_restored_from_the_lead_that_carries_the_id(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    lead_id = post(system, {"marketoId": pid}).body["dynamicsId"]
    system.wait_idle()
    state = system.deps.state
    state.delete_link(state.get_links_by_marketo([pid])[pid])
    writes_before = flow.dataverse.calls["PATCH leads()"]

    answer = post(system, {"marketoId": pid})

    assert answer.body == {"status": "exists", "dynamicsId": lead_id, "entity": "lead"}
    assert [r["leadid"] for r in leads(system)] == [lead_id]
    assert linked(system, pid) == ("lead", lead_id)
    assert flow.dataverse.calls["PATCH leads()"] == writes_before  # found by the lookup, not by a 412


def test_a_person_whose_lead_was_deleted_gets_a_new_lead(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    old_id = post(system, {"marketoId": pid}).body["dynamicsId"]
    system.wait_idle()
    system.dataverse_admin.delete_as("Jane Doe", "leads", old_id)
    system.wait_idle()
    assert system.marketo_admin.person(pid)["msftIsDeleted"] is True  # the sync's doing

    answer = post(system, {"marketoId": pid})

    assert answer.body["status"] == "created"
    assert answer.body["dynamicsId"] != old_id
    person = system.marketo_admin.person(pid)
    assert (person["msftIsDeleted"], person["msftLeadId"]) == (False, answer.body["dynamicsId"])
    system.wait_idle()
    assert [r["leadid"] for r in leads(system)] == [answer.body["dynamicsId"]]
    assert system.marketo_admin.person(pid)["msftIsDeleted"] is False


def test_a_delete_the_sync_has_not_seen_yet_also_gets_a_new_lead(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    old_id = post(system, {"marketoId": pid}).body["dynamicsId"]
    system.wait_idle()
    system.dataverse_admin.pause_webhooks()
    try:
        system.dataverse_admin.delete_as("Jane Doe", "leads", old_id)
        answer = call({"marketoId": pid})
    finally:
        system.dataverse_admin.pause_webhooks(False)
    system.wait_idle()

    assert answer.body["status"] == "created"
    new_id = answer.body["dynamicsId"]
    assert [r["leadid"] for r in leads(system)] == [new_id]
    person = system.marketo_admin.person(pid)
    assert person["msftLeadId"] == new_id
    assert not person["msftIsDeleted"]  # the late delete notice did not mark the relinked person
    assert linked(system, pid) == ("lead", new_id)


def test_an_unknown_person_answers_404_and_changes_nothing(system: LocalSystem) -> None:
    new_person(system, email="ana@fabrikam.example")
    before = snapshot(system)

    answer = post(system, {"marketoId": 424242})

    assert answer.status == 404
    assert "424242" in answer.body["error"]
    assert snapshot(system) == before


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@pytest.mark.parametrize(
    "email", ["ana+events@fabrikam.example", "o'brien@fabrikam.example", "ana_lopez&co@fabrikam.example"]
)
def test_emails_with_query_characters_still_match(system: LocalSystem, email: str) -> None:
    (contact_id,) = system.dataverse_admin.seed("contact", [{"lastname": "Lopez", "emailaddress1": email}])
    system.dataverse_admin.seed("contact", [{"lastname": "Other", "emailaddress1": "ana@fabrikam.example"}])
    pid = new_person(system, email=email)

    answer = post(system, {"marketoId": pid})

    assert answer.body == {"status": "exists", "dynamicsId": contact_id, "entity": "contact"}
