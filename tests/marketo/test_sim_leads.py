"""Lead Database endpoints of the simulator: Sync Leads rules, reads, deletes, describe, and
the activities each write records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.marketo.conftest import Marketo

LEADS = "/rest/v1/leads.json"


def _sync(m: Marketo, records: list[dict[str, Any]], **body: Any) -> list[dict[str, Any]]:
    answer = m.rest("POST", LEADS, json={"input": records, **body}).json()
    assert answer["success"] is True, answer
    return list(answer["result"])


def _reasons(result: dict[str, Any]) -> list[str]:
    assert result["status"] == "skipped"
    assert "id" not in result
    return [r["code"] for r in result["reasons"]]


def test_create_or_update_by_email_case_insensitively(marketo: Marketo) -> None:
    created = _sync(marketo, [{"email": "Ana@Contoso.com", "firstName": "Ana"}])
    assert created == [{"id": 1001, "status": "created"}]
    updated = _sync(marketo, [{"email": "ana@contoso.com", "lastName": "Silva"}])
    assert updated == [{"id": 1001, "status": "updated"}]
    person = marketo.admin.person(1001)
    assert (person["firstName"], person["lastName"]) == ("Ana", "Silva")


def test_actions_and_their_skip_reasons(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": "dup@x.com"}, {"email": "dup@x.com"}, {"email": "one@x.com"}])
    results = _sync(
        marketo,
        [{"email": "one@x.com"}, {"email": "new@x.com"}],
        action="createOnly",
    )
    assert _reasons(results[0]) == ["1005"]
    assert results[1]["status"] == "created"
    results = _sync(marketo, [{"email": "ghost@x.com"}, {"email": "dup@x.com"}], action="updateOnly")
    assert [_reasons(r) for r in results] == [["1004"], ["1007"]]
    results = _sync(marketo, [{"id": 1003, "email": "z@x.com"}], action="createOnly")
    assert _reasons(results[0]) == ["1003"]


def test_update_by_id_and_record_level_validation(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "p@x.com"}])
    results = _sync(
        marketo,
        [
            {"id": lead_id, "msftIsDeleted": True, "msftLeadId": "0f1e"},
            {"id": lead_id, "unsubscribed": "perhaps"},
            {"id": lead_id, "noSuchField": 1},
            {"id": lead_id, "email": "not-an-email"},
            {"id": lead_id, "createdAt": "2026-01-01T00:00:00Z"},
            {"id": 99999, "firstName": "Nobody"},
            {"firstName": "No key"},
        ],
        action="updateOnly",
        lookupField="id",
    )
    assert results[0] == {"id": lead_id, "status": "updated"}
    assert [_reasons(r) for r in results[1:]] == [["1001"], ["1006"], ["1001"], ["1003"], ["1004"], ["1002"]]
    assert results[1]["reasons"][0]["message"] == "Invalid value 'perhaps'. Required of type 'boolean'"
    person = marketo.admin.person(lead_id)
    assert (person["msftIsDeleted"], person["msftLeadId"]) == (True, "0f1e")


def test_lookup_on_an_unsearchable_field_is_1011(marketo: Marketo) -> None:
    answer = marketo.rest("POST", LEADS, json={"input": [{"firstName": "A"}], "lookupField": "firstName"})
    assert answer.json()["errors"][0]["code"] == "1011"


def test_over_300_records_is_rejected(marketo: Marketo) -> None:
    answer = marketo.rest("POST", LEADS, json={"input": [{"email": f"{i}@x.com"} for i in range(301)]})
    assert answer.json()["errors"][0]["code"] == "1003"


def test_writes_record_new_lead_and_one_change_per_changed_field(marketo: Marketo) -> None:
    (created,) = _sync(marketo, [{"email": "a@x.com", "firstName": "Ana", "unsubscribed": False}])
    lead_id = created["id"]
    _sync(marketo, [{"email": "a@x.com", "firstName": "Anna", "unsubscribed": False, "city": "Porto"}])
    _sync(marketo, [{"email": "a@x.com", "firstName": "Anna"}])  # unchanged: nothing recorded
    log = marketo.admin.activities(lead_id)
    assert [a["activityTypeId"] for a in log] == [12, 13, 13]
    new_lead = log[0]
    assert {a["name"]: a["value"] for a in new_lead["attributes"]}["Source Type"] == "Web service API"
    changes = {a["fields"][0]["name"]: a for a in log[1:]}
    assert changes["firstName"]["fields"][0] == {
        "id": 4,
        "name": "firstName",
        "newValue": "Anna",
        "oldValue": "Ana",
    }
    assert changes["city"]["fields"][0]["oldValue"] is None
    attrs = {a["name"]: a["value"] for a in changes["firstName"]["attributes"]}
    assert attrs["Source"] == attrs["Reason"] == "Web service API"
    assert all(a["activityDate"].endswith("Z") and len(a["activityDate"]) == 20 for a in log)


def test_user_edits_record_a_user_source(marketo: Marketo) -> None:
    lead_id = marketo.admin.user_create({"email": "u@x.com", "firstName": "Uma"})
    assert marketo.admin.user_edit(lead_id, {"firstName": "Umma", "email": "u@x.com"}) == ["firstName"]
    log = marketo.admin.activities(lead_id)
    assert [a["activityTypeId"] for a in log] == [12, 13]
    attrs = {a["name"]: a["value"] for a in log[1]["attributes"]}
    assert attrs["Source"] == "Person Details Page"
    assert attrs["Reason"] != "Web service API"


def test_get_leads_by_filter_type_with_fields_and_paging(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": f"p{i}@x.com", "msftType": "Lead"} for i in range(5)])
    first = marketo.rest(
        "GET",
        LEADS,
        params={"filterType": "msftType", "filterValues": "lead", "fields": "email", "batchSize": 2},
    ).json()
    assert first["result"] == [{"email": "p0@x.com"}, {"email": "p1@x.com"}]
    assert first["moreResult"] is True
    rest: list[dict[str, Any]] = []
    token = first["nextPageToken"]
    while token:
        page = marketo.rest(
            "GET",
            LEADS,
            params={
                "filterType": "msftType",
                "filterValues": "lead",
                "fields": "email",
                "batchSize": 2,
                "nextPageToken": token,
            },
        ).json()
        rest.extend(page["result"])
        token = page.get("nextPageToken")
    assert [r["email"] for r in rest] == ["p2@x.com", "p3@x.com", "p4@x.com"]


def test_default_fields_nulls_and_repeated_keys(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "d@x.com"}])
    default = marketo.rest("GET", LEADS, params={"filterType": "id", "filterValues": str(lead_id)}).json()
    assert set(default["result"][0]) == {"id", "email", "firstName", "lastName", "createdAt", "updatedAt"}
    assert default["result"][0]["firstName"] is None
    repeated = marketo.rest(
        "GET", f"/rest/v1/lead/{lead_id}.json", params=[("fields", "email"), ("fields", "msftType")]
    ).json()
    assert repeated["result"] == [{"email": "d@x.com", "msftType": None}]
    assert marketo.rest("GET", "/rest/v1/lead/424242.json").json()["result"] == []


def test_filter_errors(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(max_filter_matches=3)
    m.admin.seed_persons([{"email": f"p{i}@x.com", "msftType": "Lead"} for i in range(4)])

    def code(**params: Any) -> str:
        return str(m.rest("GET", LEADS, params=params).json()["errors"][0]["code"])

    assert code(filterType="msftType", filterValues="Lead") == "1003"  # too many matches
    assert code(filterType="firstName", filterValues="A") == "1011"
    assert code(filterType="nope", filterValues="A") == "1006"
    assert code(filterType="email", filterValues="a@x.com", fields="email,nope") == "1006"
    assert code(filterType="email", filterValues=",".join(f"{i}@x.com" for i in range(301))) == "1003"
    assert code(filterType="email") == "701"


def test_method_override_post_form_with_method_in_query_or_body(marketo: Marketo) -> None:
    marketo.admin.seed_persons([{"email": "f@x.com", "firstName": "Fay"}])
    form = {"filterType": "email", "filterValues": "f@x.com", "fields": "firstName"}
    in_query = marketo.rest("POST", LEADS, params={"_method": "GET"}, data=form).json()
    in_body = marketo.rest("POST", LEADS, data={"_method": "GET", **form}).json()
    assert in_query["result"] == in_body["result"] == [{"firstName": "Fay"}]
    calls = marketo.admin.calls()
    assert calls["methodOverrides"] == 2
    assert calls["byEndpoint"]["GET /rest/v1/leads.json"] == 2


def test_delete_leads_both_forms_record_delete_lead(marketo: Marketo) -> None:
    a, b = marketo.admin.seed_persons([{"email": "a@x.com", "firstName": "Al"}, {"email": "b@x.com"}])
    result = marketo.rest("POST", "/rest/v1/leads/delete.json", json={"input": [{"id": a}, {"id": 5}]}).json()
    assert result["result"][0] == {"id": a, "status": "deleted"}
    assert _reasons_any(result["result"][1]) == ["1004"]
    legacy = marketo.rest("DELETE", LEADS, json={"input": [{"id": b}]}).json()
    assert legacy["result"] == [{"id": b, "status": "deleted"}]
    assert [p["id"] for p in marketo.admin.persons()] == []
    deleted = marketo.admin.activities(a)
    assert [x["activityTypeId"] for x in deleted] == [37]
    assert deleted[0]["primaryAttributeValue"] == "Al"


def _reasons_any(result: dict[str, Any]) -> list[str]:
    assert result["status"] == "skipped"
    return [r["code"] for r in result["reasons"]]


def test_describe_and_describe2(marketo: Marketo) -> None:
    described = {
        f["rest"]["name"]: f for f in marketo.rest("GET", "/rest/v1/leads/describe.json").json()["result"]
    }
    assert described["msftIsDeleted"]["displayName"] == "Microsoft Is Deleted"
    assert described["msftIsDeleted"]["dataType"] == "boolean"
    assert described["msftDoNotEmail"]["soap"]["name"] == "MSFTDoNotEmail"
    assert described["id"]["rest"]["readOnly"] is True
    assert described["email"]["length"] == 255
    (api_lead,) = marketo.rest("GET", "/rest/v1/leads/describe2.json").json()["result"]
    fields = {f["name"]: f for f in api_lead["fields"]}
    assert fields["updatedAt"]["updateable"] is False
    assert fields["msftLeadId"]["updateable"] is True
    assert ["msftLeadId"] in api_lead["searchableFields"]
    assert ["firstName"] not in api_lead["searchableFields"]


def test_extra_fields_from_config(start_marketo: Callable[..., Marketo]) -> None:
    from simulators.marketo import ExtraField

    m = start_marketo(extra_fields=(ExtraField("leadScore", "Lead Score", "integer", None),))
    results = _sync(m, [{"email": "s@x.com", "leadScore": "12"}, {"email": "t@x.com", "leadScore": "high"}])
    assert results[0]["status"] == "created"
    assert _reasons(results[1]) == ["1001"]
    assert m.admin.person(results[0]["id"])["leadScore"] == 12


def test_lookups_follow_changes_and_deletes(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "old@x.com", "msftLeadId": "AA-1"}])
    _sync(
        marketo,
        [{"id": lead_id, "email": "new@x.com", "msftLeadId": "bb-2"}],
        action="updateOnly",
        lookupField="id",
    )

    def ids(filter_type: str, value: str) -> list[int]:
        answer = marketo.rest("GET", LEADS, params={"filterType": filter_type, "filterValues": value}).json()
        return [p["id"] for p in answer["result"]]

    assert ids("email", "old@x.com") == []
    assert ids("email", "NEW@x.com") == [lead_id]
    assert ids("msftLeadId", "aa-1") == []
    assert ids("msftLeadId", "BB-2") == [lead_id]
    marketo.admin.user_delete(lead_id)
    assert ids("email", "new@x.com") == []
    assert ids("id", str(lead_id)) == []
