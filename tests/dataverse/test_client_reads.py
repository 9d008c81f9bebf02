"""Queries, paging, change tracking, metadata, bulk messages and $batch through the client."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import BatchRequest
from shared.errors import NotFoundError, ValidationError
from simulators.dataverse.admin import DataverseAdmin

from .conftest import lead

EMAILS = [
    "o'brien@fabrikam.example",
    "a+b@x.example",
    "x&y=z#1?@q.example",
    "pct%_[x]@y.example",
    "Ünï'côdé@x.example",
]


def test_paging_follows_next_links(client: DataverseClient, admin: DataverseAdmin) -> None:
    admin.seed("lead", [lead(lastname=f"L{i:03}") for i in range(23)])
    rows = list(client.query("leads", select=["lastname"], orderby="lastname desc", page_size=5))
    assert [r["lastname"] for r in rows] == [f"L{i:03}" for i in reversed(range(23))]
    assert client.calls["GET leads"] == 5


def test_rows_written_between_pages_neither_repeat_nor_vanish(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    ids = admin.seed("lead", [lead(lastname=f"L{i}") for i in range(6)])
    pages = client.query("leads", select=["leadid"], page_size=2)
    seen = [next(pages)["leadid"], next(pages)["leadid"]]
    client.create("leads", lead(lastname="late"))
    seen += [r["leadid"] for r in pages]
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)


@pytest.mark.parametrize("email", EMAILS)
def test_filter_on_awkward_emails_matches_exactly_that_row(
    client: DataverseClient, admin: DataverseAdmin, email: str
) -> None:
    admin.seed("lead", [lead(emailaddress1=email), lead(emailaddress1="other@x.example")])
    rows = list(client.query("leads", select=["emailaddress1"], filter=odata.eq("emailaddress1", email)))
    assert [r["emailaddress1"] for r in rows] == [email]
    upper = list(
        client.query("leads", select=["emailaddress1"], filter=odata.eq("emailaddress1", email.upper()))
    )
    assert len(upper) == 1  # Dataverse compares strings case-insensitively


def test_in_filter_with_quotes(client: DataverseClient, admin: DataverseAdmin) -> None:
    admin.seed("lead", [lead(lastname=n) for n in ("O'Brian", "Smith", "Jones")])
    rows = client.query(
        "leads", select=["lastname"], filter=odata.in_("lastname", ["O'Brian", "Smith"]), orderby=["lastname"]
    )
    assert [r["lastname"] for r in rows] == ["O'Brian", "Smith"]


def test_contains_treats_wildcards_literally_when_escaped(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    admin.seed("lead", [lead(jobtitle="100% owner"), lead(jobtitle="1000 owners")])
    escaped = list(client.query("leads", select=["jobtitle"], filter=odata.contains("jobtitle", "100%")))
    raw = list(client.query("leads", select=["jobtitle"], filter="contains(jobtitle,'100%')"))
    assert [r["jobtitle"] for r in escaped] == ["100% owner"]
    assert len(raw) == 2


def test_top_and_lookup_filters(client: DataverseClient, admin: DataverseAdmin) -> None:
    admin.seed("lead", [lead(lastname=f"T{i}") for i in range(4)])
    owner = client.whoami()
    assert len(list(client.query("leads", select=["leadid"], top=2))) == 2
    mine = list(
        client.query("leads", select=["_ownerid_value"], filter=odata.eq("_ownerid_value", uuid.UUID(owner)))
    )
    assert len(mine) == 4


@given(email=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_string_round_trips_through_a_real_query(
    client: DataverseClient, admin: DataverseAdmin, email: str
) -> None:
    admin.reset()
    row_id = admin.seed("lead", [lead(emailaddress1=email[:100])])[0]
    rows = list(client.query("leads", select=["leadid"], filter=odata.eq("emailaddress1", email[:100])))
    assert [r["leadid"] for r in rows] == [row_id]


def test_unknown_column_in_filter_is_a_validation_error(client: DataverseClient) -> None:
    with pytest.raises(ValidationError) as caught:
        list(client.query("leads", select=["leadid"], filter="shoesize eq 4"))
    assert caught.value.code == "0x80060888"
    assert (
        caught.value.message
        == "Could not find a property named 'shoesize' on type 'Microsoft.Dynamics.CRM.lead'."
    )


def test_change_tracking_reports_changes_and_deletes(client: DataverseClient, admin: DataverseAdmin) -> None:
    keep, change, drop = admin.seed("lead", [lead(lastname=n) for n in ("keep", "change", "drop")])
    first = client.track_changes("leads", ["lastname"], page_size=2)
    assert sorted(r["lastname"] for r in first.changed) == ["change", "drop", "keep"]
    assert first.deleted == []
    client.update("leads", change, {"lastname": "changed"})
    client.delete("leads", drop)
    created = client.create("leads", lead(lastname="new"), select=["leadid"])
    delta = client.follow_delta(first.delta_link)
    assert sorted(r["lastname"] for r in delta.changed) == ["changed", "new"]
    assert delta.deleted == [drop]
    assert keep not in {r["leadid"] for r in delta.changed}
    quiet = client.follow_delta(delta.delta_link)
    assert (quiet.changed, quiet.deleted) == ([], [])
    assert created["leadid"] in {r["leadid"] for r in delta.changed}


def test_change_tracking_is_per_table(client: DataverseClient) -> None:
    assert client.change_tracking_enabled("lead") is True
    assert client.change_tracking_enabled("account") is False
    with pytest.raises(ValidationError) as caught:
        client.track_changes("accounts", ["name"])
    assert caught.value.code == "0x80072491"


def test_entity_metadata(client: DataverseClient) -> None:
    meta = client.entity_metadata("lead")
    columns = meta.attributes
    assert (meta.entity_set, meta.table.primary_id) == ("leads", "leadid")
    assert columns["lastname"].required_level == "ApplicationRequired"
    assert columns["emailaddress1"].max_length == 100
    assert columns["emailaddress1"].format == "Email"
    assert columns["leadsourcecode"].options == frozenset(range(1, 11))
    assert columns["leadsourcecode"].option_labels[8] == "Web"
    assert columns["statuscode"].options == frozenset(range(1, 8))
    assert columns["fullname"].valid_for_create is False
    assert columns["statecode"].valid_for_update is True
    assert columns["mdsync_marketoid"].max_length == 20
    assert columns["new_synctomkto"].attribute_type == "Boolean"
    assert columns["donotemail"].options is None
    before = client.calls.total
    client.entity_metadata("lead")
    assert client.calls.total == before  # cached


def test_supports_multiple_follows_the_message_filters(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    assert client.supports_multiple("lead") is True
    admin.set_bulk_support("contact", False)
    assert client.supports_multiple("contact") is False


def test_create_and_update_multiple(client: DataverseClient, admin: DataverseAdmin) -> None:
    ids = client.create_multiple("leads", "lead", [lead(lastname="A"), lead(lastname="B")])
    assert len(ids) == 2
    client.update_multiple(
        "leads", "lead", [{"leadid": ids[0], "jobtitle": "X"}, {"leadid": ids[1], "jobtitle": "Y"}]
    )
    titles = {r["leadid"]: r["jobtitle"] for r in admin.rows("lead")}
    assert titles == {ids[0]: "X", ids[1]: "Y"}
    assert client.calls["POST leads/CreateMultiple"] == 1
    assert client.calls["POST leads/UpdateMultiple"] == 1


def test_bulk_messages_are_all_or_nothing(client: DataverseClient, admin: DataverseAdmin) -> None:
    with pytest.raises(ValidationError):
        client.create_multiple("leads", "lead", [lead(lastname="fine"), lead(firstname="x" * 60)])
    assert admin.rows("lead") == []
    ids = client.create_multiple("leads", "lead", [lead(lastname="A")])
    with pytest.raises(NotFoundError):
        client.update_multiple(
            "leads",
            "lead",
            [{"leadid": ids[0], "jobtitle": "X"}, {"leadid": str(uuid.uuid4()), "jobtitle": "Y"}],
        )
    assert admin.rows("lead")[0]["jobtitle"] is None


def test_bulk_falls_back_to_a_batch_change_set(client: DataverseClient, admin: DataverseAdmin) -> None:
    admin.set_bulk_support("contact", False)
    ids = client.create_multiple("contacts", "contact", [{"lastname": "A"}, {"lastname": "B"}])
    client.update_multiple("contacts", "contact", [{"contactid": i, "jobtitle": "Z"} for i in ids])
    assert sorted(r["jobtitle"] for r in admin.rows("contact")) == ["Z", "Z"]
    assert client.calls["POST $batch"] == 2
    with pytest.raises(ValidationError):
        client.update_multiple(
            "contacts",
            "contact",
            [{"contactid": ids[0], "jobtitle": "ok"}, {"contactid": ids[1], "jobtitle": "x" * 200}],
        )
    assert sorted(r["jobtitle"] for r in admin.rows("contact")) == ["Z", "Z"]


def test_batch_independent_parts_and_change_sets(client: DataverseClient, admin: DataverseAdmin) -> None:
    results = client.batch(
        [
            BatchRequest("POST", "leads", lead(lastname="Solo")),
            [
                BatchRequest("POST", "accounts", {"name": "Fabrikam"}, content_id="1"),
                BatchRequest(
                    "POST", "contacts", {"lastname": "Lopez", "parentcustomerid_account@odata.bind": "$1"}
                ),
            ],
            BatchRequest("GET", "leads?$select=lastname"),
        ]
    )
    assert [r.status for r in results] == [204, 204, 204, 200]
    assert [r["lastname"] for r in results[3].body["value"]] == ["Solo"]
    account_id = results[1].entity_id
    assert admin.rows("contact")[0]["_parentcustomerid_value"] == account_id


def test_batch_change_set_rolls_back_and_stops(client: DataverseClient, admin: DataverseAdmin) -> None:
    results = client.batch(
        [
            [
                BatchRequest("POST", "leads", lead(lastname="rolled back")),
                BatchRequest("POST", "leads", lead(firstname="x" * 99)),
            ],
            BatchRequest("POST", "leads", lead(lastname="never run")),
        ]
    )
    assert [r.status for r in results] == [400]
    assert isinstance(results[0].error, ValidationError)
    assert results[0].error.code == "0x80044331"
    assert admin.rows("lead") == []


def test_batch_continue_on_error(client: DataverseClient, admin: DataverseAdmin) -> None:
    missing = str(uuid.uuid4())
    results = client.batch(
        [
            BatchRequest("PATCH", f"leads({missing})", {"jobtitle": "x"}, {"If-Match": "*"}),
            BatchRequest("POST", "leads", lead(lastname="still created")),
        ],
        continue_on_error=True,
    )
    assert [r.status for r in results] == [404, 204]
    assert isinstance(results[0].error, NotFoundError)
    assert [r["lastname"] for r in admin.rows("lead")] == ["still created"]
