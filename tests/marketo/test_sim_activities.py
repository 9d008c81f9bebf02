"""Activity endpoints of the simulator: paging tokens, lead changes, deleted leads, lead
activities, activity types, and custom activity types and records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.marketo.conftest import Marketo

EXT = "/rest/v1/activities/external"


def _since(m: Marketo, minutes_ago: int = 5) -> str:
    stamp = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = m.rest("GET", "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": stamp}).json()
    assert body["success"] is True
    assert "result" not in body
    return str(body["nextPageToken"])


def _drain(
    m: Marketo, path: str, token: str, **params: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pages, items = [], []
    while True:
        page = m.rest("GET", path, params={"nextPageToken": token, **params}).json()
        assert page["success"] is True, page
        assert "nextPageToken" in page
        assert "moreResult" in page
        pages.append(page)
        items.extend(page.get("result", []))
        token = page["nextPageToken"]
        if not page["moreResult"]:
            return pages, items


def _sync(m: Marketo, records: list[dict[str, Any]]) -> None:
    assert m.rest("POST", "/rest/v1/leads.json", json={"input": records}).json()["success"]


def test_lead_changes_returns_new_lead_and_changes_of_the_asked_fields(marketo: Marketo) -> None:
    token = _since(marketo)
    _sync(marketo, [{"email": "a@x.com", "firstName": "Ana"}])
    _sync(marketo, [{"email": "a@x.com", "firstName": "Anna", "city": "Porto"}])
    _, items = _drain(marketo, "/rest/v1/activities/leadchanges.json", token, fields="firstName")
    assert [a["activityTypeId"] for a in items] == [12, 13]
    change = items[1]
    assert change["fields"] == [{"id": 4, "name": "firstName", "newValue": "Anna", "oldValue": "Ana"}]
    assert change["marketoGUID"]
    assert change["leadId"] == 1001


def test_caught_up_token_sees_only_later_activities(marketo: Marketo) -> None:
    token = _since(marketo)
    _sync(marketo, [{"email": "a@x.com"}])
    pages, _ = _drain(marketo, "/rest/v1/activities/leadchanges.json", token, fields="email")
    caught_up = pages[-1]["nextPageToken"]
    empty = marketo.rest(
        "GET", "/rest/v1/activities/leadchanges.json", params={"nextPageToken": caught_up, "fields": "email"}
    ).json()
    assert "result" not in empty  # an empty page carries no result member
    assert empty["moreResult"] is False
    _sync(marketo, [{"email": "b@x.com"}])
    _, later = _drain(marketo, "/rest/v1/activities/leadchanges.json", caught_up, fields="email")
    assert [a["leadId"] for a in later] == [1002]


def test_a_token_from_the_future_sees_nothing_earlier(marketo: Marketo) -> None:
    _sync(marketo, [{"email": "a@x.com"}])
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    token = marketo.rest(
        "GET", "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": future}
    ).json()
    _, items = _drain(marketo, "/rest/v1/activities/leadchanges.json", token["nextPageToken"], fields="email")
    assert items == []


def test_batch_size_and_scan_limit_make_short_pages(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(activity_scan_limit=2)
    token = _since(m)
    _sync(m, [{"email": f"{i}@x.com"} for i in range(3)])
    _sync(m, [{"email": f"{i}@x.com", "city": "Lyon"} for i in range(3)])  # 3 changes of city
    pages, items = _drain(m, "/rest/v1/activities/leadchanges.json", token, fields="email", batchSize=1)
    assert len(items) == 3  # only the New Lead activities match "email"
    assert any(p["moreResult"] and "result" not in p for p in pages)  # empty page, more to come


def test_lead_changes_errors(marketo: Marketo) -> None:
    token = _since(marketo)

    def code(**params: Any) -> str:
        answer = marketo.rest("GET", "/rest/v1/activities/leadchanges.json", params=params).json()
        return str(answer["errors"][0]["code"])

    assert code(nextPageToken=token) == "701"
    assert code(nextPageToken=token, fields="bogus") == "1006"
    assert code(nextPageToken="!!!", fields="email") == "1003"
    assert code(nextPageToken=token, fields="email", batchSize=301) == "1003"
    assert code(nextPageToken=token, fields="email", leadIds=",".join(str(i) for i in range(31))) == "1003"
    bad_date = marketo.rest(
        "GET", "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": "yesterday"}
    )
    assert bad_date.json()["errors"][0]["code"] == "704"


def test_deleted_leads_and_lead_activities(marketo: Marketo) -> None:
    token = _since(marketo)
    a, b = marketo.admin.seed_persons([{"email": "a@x.com", "lastName": "Ames"}, {"email": "b@x.com"}])
    marketo.admin.user_delete(a)
    _, deleted = _drain(marketo, "/rest/v1/activities/deletedleads.json", token)
    assert [(d["leadId"], d["activityTypeId"], d["primaryAttributeValueId"]) for d in deleted] == [(a, 37, a)]
    assert deleted[0]["primaryAttributeValue"] == "Ames"
    marketo.admin.user_edit(b, {"city": "Oslo"})
    _, for_b = _drain(marketo, "/rest/v1/activities.json", token, activityTypeIds="13,37", leadIds=str(b))
    assert [x["activityTypeId"] for x in for_b] == [13]
    assert for_b[0]["primaryAttributeValue"] == "City"


def test_activity_types_include_approved_custom_types(marketo: Marketo) -> None:
    _create_type(marketo)
    types = {t["id"]: t for t in marketo.rest("GET", "/rest/v1/activities/types.json").json()["result"]}
    assert {12, 13, 37, 110} <= set(types)
    assert 100001 not in types  # still a draft
    assert marketo.rest("POST", f"{EXT}/type/mdsyncFail/approve.json", json={}).json()["success"]
    types = {t["id"]: t for t in marketo.rest("GET", "/rest/v1/activities/types.json").json()["result"]}
    assert types[100001]["apiName"] == "mdsyncFail"


def _create_type(m: Marketo, api_name: str = "mdsyncFail") -> dict[str, Any]:
    body = {
        "apiName": api_name,
        "name": "Sync Failed",
        "triggerName": "Sync Fails",
        "filterName": "Sync Failed",
        "primaryAttribute": {"apiName": "entity", "name": "Entity"},
    }
    answer = m.rest("POST", f"{EXT}/type.json", json=body).json()
    assert answer["success"] is True, answer
    return dict(answer["result"][0])


def _activity(lead_id: int, type_id: int = 100001, **extra: Any) -> dict[str, Any]:
    return {
        "leadId": lead_id,
        "activityDate": "2026-11-20T09:20:00Z",
        "activityTypeId": type_id,
        "primaryAttributeValue": "lead",
        "attributes": [{"apiName": "errorCode", "value": "0x80040265"}],
        **extra,
    }


def test_custom_activity_type_lifecycle_and_records(marketo: Marketo) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "a@x.com"}])
    created = _create_type(marketo)
    assert (created["id"], created["status"]) == (100001, "draft")
    attrs = {"attributes": [{"apiName": "errorCode", "name": "Error Code", "dataType": "string"}]}
    assert marketo.rest("POST", f"{EXT}/type/mdsyncFail/attributes/create.json", json=attrs).json()["success"]
    draft_only = marketo.rest("POST", f"{EXT}.json", json={"input": [_activity(lead_id)]}).json()
    # Only approved types take records.
    assert draft_only["result"][0]["errors"][0]["code"] == "1013"
    approved = marketo.rest("POST", f"{EXT}/type/mdsyncFail/approve.json", json={}).json()["result"][0]
    assert approved["status"] == "approved"
    described = marketo.rest("GET", f"{EXT}/type/mdsyncFail/describe.json").json()["result"][0]
    assert [a["apiName"] for a in described["attributes"]] == ["errorCode"]
    added = marketo.rest("POST", f"{EXT}.json", json={"input": [_activity(lead_id), _activity(999)]}).json()
    first, second = added["result"]
    assert first["status"] == "added"
    assert first["marketoGUID"]
    assert second == {"status": "skipped", "errors": [{"code": "1004", "message": "Lead not found"}]}
    (logged,) = marketo.admin.activities(lead_id, [100001])
    assert logged["primaryAttributeValue"] == "lead"
    assert logged["attributes"][0]["value"] == "0x80040265"
    listed = marketo.rest("GET", f"{EXT}/types.json").json()["result"]
    assert [(t["apiName"], t["status"]) for t in listed] == [("mdsyncFail", "approved")]


def test_custom_activity_limits(marketo: Marketo) -> None:
    for i in range(10):
        _create_type(marketo, f"type{i}")
    eleventh = marketo.rest(
        "POST",
        f"{EXT}/type.json",
        json={
            "apiName": "typeX",
            "name": "X",
            "triggerName": "X",
            "filterName": "X",
            "primaryAttribute": {"apiName": "p", "name": "P"},
        },
    ).json()
    assert eleventh["errors"][0]["code"] == "1027"
    many = {"attributes": [{"apiName": f"a{i}", "name": f"A {i}"} for i in range(21)]}
    too_many = marketo.rest("POST", f"{EXT}/type/type0/attributes/create.json", json=many).json()
    assert too_many["errors"][0]["code"] == "1028"
    marketo.rest(
        "POST",
        f"{EXT}/type/type0/attributes/create.json",
        json={"attributes": [{"apiName": "big", "name": "Big"}]},
    )
    marketo.rest("POST", f"{EXT}/type/type0/approve.json", json={})
    (lead_id,) = marketo.admin.seed_persons([{"email": "a@x.com"}])
    huge = _activity(lead_id, attributes=[{"apiName": "big", "value": "x" * 70_000}])
    answer = marketo.rest("POST", f"{EXT}.json", json={"input": [huge]}).json()
    assert answer["result"][0]["errors"][0]["code"] == "1049"
    duplicate = marketo.rest(
        "POST",
        f"{EXT}/type.json",
        json={
            "apiName": "type1",
            "name": "Y",
            "triggerName": "Y",
            "filterName": "Y",
            "primaryAttribute": {"apiName": "p", "name": "P"},
        },
    ).json()
    assert duplicate["errors"][0]["code"] == "1017"  # checked before the type count
