"""MarketoClient operations against the simulator: reads (batching, _method=GET, paging),
writes (per-record results, chunking), deletes, describe, activity pages, custom activities."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.marketo.client import MarketoClient
from shared.marketo.models import CustomActivityTypeSpec
from tests.marketo.conftest import Marketo

FAILURE = CustomActivityTypeSpec(
    api_name="mdsyncSyncFailed",
    name="Microsoft Sync Failed",
    trigger_name="Microsoft Sync Fails",
    filter_name="Microsoft Sync Failed",
    primary_attribute=("dynamicsEntity", "Dynamics Entity"),
    attributes=(("errorCode", "Error Code", "string"), ("errorMessage", "Error Message", "text")),
    description="a write to Dynamics 365 was rejected",
)


def _since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def test_push_leads_results_in_input_order_with_reasons(marketo: Marketo) -> None:
    client = marketo.client()
    results = client.push_leads(
        [
            {"email": "ana@x.com", "firstName": "Ana"},
            {"email": "bo@x.com", "msftIsDeleted": "sometimes"},
            {"email": "ana@x.com", "lastName": "Silva"},
        ]
    )
    assert [(r.status, r.id) for r in results] == [("created", 1001), ("skipped", None), ("updated", 1001)]
    assert [(x.code, x.message) for x in results[1].reasons] == [
        ("1001", "Invalid value 'sometimes'. Required of type 'boolean'")
    ]
    assert not results[1].ok
    assert results[0].ok


def test_push_leads_update_only_by_id(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "a@x.com"}])
    client = marketo.client()
    results = client.push_leads(
        [{"id": lead_id, "msftLeadId": "0aa1"}, {"id": 7, "msftLeadId": "x"}],
        action="updateOnly",
        lookup_field="id",
    )
    assert results[0].status == "updated"
    assert [r.code for r in results[1].reasons] == ["1004"]
    assert marketo.admin.person(lead_id)["msftLeadId"] == "0aa1"


def test_push_leads_chunks_300_a_call(marketo: Marketo) -> None:
    client = marketo.client()
    results = client.push_leads([{"email": f"p{i}@x.com"} for i in range(650)])
    assert [r.status for r in results] == ["created"] * 650
    assert [r.id for r in results] == list(range(1001, 1651))
    assert client.calls["POST /rest/v1/leads.json"] == 3


def test_get_leads_by_ids_batches_300_ids(marketo: Marketo) -> None:
    ids = marketo.admin.seed_persons([{"email": f"p{i}@x.com"} for i in range(400)])
    client = marketo.client()
    found = client.get_leads_by_ids([*ids, 999_999], ["id", "email"])
    assert sorted(p["id"] for p in found) == ids
    assert client.calls["GET /rest/v1/leads.json"] == 2
    assert client.get_leads_by_ids([], ["id"]) == []


def test_long_filter_queries_use_method_override(marketo: Marketo) -> None:
    emails = [f"someone.with.quite.a.long.address.{i}@subsidiary.example.com" for i in range(300)]
    marketo.admin.seed_persons([{"email": e} for e in emails[:5]])
    client = marketo.client()
    found = client.get_leads_by_filter("email", emails, ["email", "firstName"])
    assert sorted(p["email"] for p in found) == sorted(emails[:5])
    calls = marketo.admin.calls()
    assert calls["methodOverrides"] == 1
    assert client.calls["GET /rest/v1/leads.json"] == 1


def test_filter_results_are_paged(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": f"p{i}@x.com", "msftType": "Contact"} for i in range(700)])
    client = marketo.client()
    found = client.get_leads_by_filter("msftType", ["Contact"], ["id"])
    assert len({p["id"] for p in found}) == 700
    assert client.calls["GET /rest/v1/leads.json"] == 3


def test_read_deletions(marketo: Marketo) -> None:
    client = marketo.client()
    token = client.get_paging_token(_since())
    a, b = marketo.admin.seed_persons([{"email": "a@x.com"}, {"email": "b@x.com"}])
    marketo.rest("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": a}]}).raise_for_status()
    page = client.get_deleted_leads(token)
    assert [(x.lead_id, x.activity_type_id) for x in page.activities] == [(a, 37)]
    assert page.more_result is False
    assert page.next_page_token
    assert b in [p["id"] for p in marketo.admin.persons()]


def test_describe_leads(marketo: Marketo) -> None:
    fields = {f.name: f for f in marketo.client().describe_leads()}
    assert fields["msftIsDeleted"].display_name == "Microsoft Is Deleted"
    assert fields["msftIsDeleted"].data_type == "boolean"
    assert fields["msftIsDeleted"].updateable is True
    assert fields["updatedAt"].updateable is False
    assert fields["email"].soap_name == "Email"
    assert fields["company"].length == 255


def test_lead_changes_paging(marketo: Marketo) -> None:
    client = marketo.client()
    token = client.get_paging_token(_since())
    client.push_leads([{"email": f"p{i}@x.com", "firstName": "A"} for i in range(5)])
    client.push_leads([{"email": f"p{i}@x.com", "firstName": "B"} for i in range(5)])
    seen: list[Any] = []
    while True:
        page = client.get_lead_changes(token, ["firstName"], batch_size=4)
        seen.extend(page.activities)
        assert page.next_page_token
        token = page.next_page_token
        if not page.more_result:
            break
    assert [a.activity_type_id for a in seen] == [12] * 5 + [13] * 5
    assert len({a.marketo_guid for a in seen}) == 10
    change = seen[-1]
    assert change.fields[0]["newValue"] == "B"
    assert change.fields[0]["oldValue"] == "A"
    assert change.attribute("Source") == "Web service API"
    assert change.activity_date.tzinfo is not None
    again = client.get_lead_changes(token, ["firstName"])
    assert again.activities == ()
    assert again.more_result is False


def test_lead_changes_with_many_fields_use_method_override(start_marketo: Callable[..., Marketo]) -> None:
    from simulators.marketo import ExtraField

    extra = tuple(ExtraField(f"customFieldNumber{i:04d}", f"Custom {i}") for i in range(400))
    m = start_marketo(extra_fields=extra)
    client = m.client()
    token = client.get_paging_token(_since())
    client.push_leads([{"email": "a@x.com", "customFieldNumber0399": "v"}])
    client.push_leads([{"email": "a@x.com", "customFieldNumber0399": "w"}])
    page = client.get_lead_changes(token, [f.name for f in extra])
    # Creation records New Lead only; the second write is a Change Data Value.
    assert [a.activity_type_id for a in page.activities] == [12, 13]
    assert m.admin.calls()["methodOverrides"] == 1


def test_custom_activity_type_created_once_and_activity_on_the_person(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "a@x.com"}])
    client = marketo.client()
    type_id = client.ensure_custom_activity_type(FAILURE)
    assert client.ensure_custom_activity_type(FAILURE) == type_id
    assert client.calls["POST /rest/v1/activities/external/type.json"] == 1
    assert client.calls["POST /rest/v1/activities/external/type/{apiName}/approve.json"] == 1
    (listed,) = client.list_custom_activity_types()
    assert (listed.id, listed.status, listed.attributes) == (
        type_id,
        "approved",
        ("errorCode", "errorMessage"),
    )
    results = client.add_custom_activities(
        [
            {
                "leadId": lead_id,
                "activityDate": datetime.now(UTC),
                "activityTypeId": type_id,
                "primaryAttributeValue": "lead",
                "attributes": [
                    {"apiName": "errorCode", "value": "0x80040265"},
                    {"apiName": "errorMessage", "value": "Topic is required"},
                ],
            },
            {
                "leadId": 4,
                "activityDate": datetime.now(UTC),
                "activityTypeId": type_id,
                "primaryAttributeValue": "lead",
            },
        ]
    )
    assert results[0].status == "added"
    assert results[0].marketo_guid
    assert [r.code for r in results[1].reasons] == ["1004"]
    (logged,) = marketo.admin.activities(lead_id, [type_id])
    assert {a["apiName"]: a["value"] for a in logged["attributes"]} == {
        "errorCode": "0x80040265",
        "errorMessage": "Topic is required",
    }
    token = client.get_paging_token(datetime.now(UTC) - timedelta(hours=1))
    page = client.get_lead_activities(token, [type_id], [lead_id])
    assert [a.primary_attribute_value for a in page.activities] == ["lead"]


def test_ensure_completes_a_half_made_type(marketo: Marketo) -> None:
    client = marketo.client()
    marketo.rest(
        "POST",
        "/rest/v1/activities/external/type.json",
        json={
            "apiName": FAILURE.api_name,
            "name": FAILURE.name,
            "triggerName": FAILURE.trigger_name,
            "filterName": FAILURE.filter_name,
            "primaryAttribute": {"apiName": "dynamicsEntity", "name": "Dynamics Entity"},
        },
    )  # a previous run stopped after creating the draft
    type_id = client.ensure_custom_activity_type(FAILURE)
    described = client.describe_custom_activity_type(FAILURE.api_name)
    assert (described.id, described.status) == (type_id, "approved")
    assert described.attributes == ("errorCode", "errorMessage")


def test_ensure_adds_new_attributes_to_an_approved_type(marketo: Marketo) -> None:
    client = marketo.client()
    client.ensure_custom_activity_type(FAILURE)
    wider = CustomActivityTypeSpec(
        **{**FAILURE.__dict__, "attributes": (*FAILURE.attributes, ("direction", "Direction", "string"))}
    )
    client.ensure_custom_activity_type(wider)
    assert client.list_custom_activity_types()[0].attributes == ("errorCode", "errorMessage", "direction")


def test_counts_use_the_simulators_endpoint_keys(marketo: Marketo) -> None:
    client = marketo.client()
    client.ensure_custom_activity_type(FAILURE)
    client.describe_custom_activity_type(FAILURE.api_name)
    sim = marketo.admin.calls()["byEndpoint"]
    ours = dict(client.calls.items())
    assert ours == sim
    assert client.calls.total == sum(v for k, v in ours.items() if "identity" not in k)


def test_client_rejects_naive_datetimes(marketo: Marketo) -> None:
    client: MarketoClient = marketo.client()
    with pytest.raises(ValueError, match="timezone"):
        client.get_paging_token(datetime(2026, 1, 1))
