"""Single-row reads and writes through DataverseClient against the simulator, with the
validation the real Web API applies (and the one it does not: ApplicationRequired)."""

from __future__ import annotations

import threading
import uuid

import pytest

from shared.dataverse.client import DataverseClient
from shared.errors import ConflictError, NotFoundError, ValidationError
from simulators.dataverse.admin import DataverseAdmin

from .conftest import APP_USER, lead


def test_create_returns_the_row_with_defaults_and_owner(client: DataverseClient) -> None:
    row = client.create(
        "leads",
        lead(leadsourcecode=8),
        select=["leadid", "fullname", "statecode", "statuscode", "_ownerid_value", "donotemail"],
    )
    assert uuid.UUID(row["leadid"])
    assert row["fullname"] == "Ana Lopez"
    assert (row["statecode"], row["statuscode"]) == (0, 1)
    assert row["_ownerid_value"] == APP_USER
    assert row["donotemail"] is False
    assert row["@odata.etag"].startswith('W/"')


def test_get_by_id_and_by_alternate_key(client: DataverseClient) -> None:
    created = client.create("leads", lead(mdsync_marketoid="1001"), select=["leadid"])
    by_id = client.get("leads", created["leadid"], select=["lastname"])
    by_key = client.get("leads", {"mdsync_marketoid": "1001"}, select=["leadid"])
    assert by_id["lastname"] == "Lopez"
    assert by_key["leadid"] == created["leadid"]


def test_get_missing_raises_not_found_with_the_service_code(client: DataverseClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError) as caught:
        client.get("leads", missing, select=["leadid"])
    assert caught.value.code == "0x80040217"
    assert caught.value.message == f"lead With Id = {missing} Does Not Exist"
    with pytest.raises(NotFoundError) as by_key:
        client.get("leads", {"mdsync_marketoid": "nope"}, select=["leadid"])
    assert by_key.value.code == "0x80060891"


def test_update_existing_and_missing(client: DataverseClient) -> None:
    row = client.create("leads", lead(), select=["leadid"])
    client.update("leads", row["leadid"], {"jobtitle": "CTO", "firstname": "Anna"})
    after = client.get("leads", row["leadid"], select=["jobtitle", "fullname"])
    assert (after["jobtitle"], after["fullname"]) == ("CTO", "Anna Lopez")
    with pytest.raises(NotFoundError) as caught:
        client.update("leads", str(uuid.uuid4()), {"jobtitle": "x"})
    assert caught.value.code == "0x80040217"


def test_stale_etag_is_a_conflict(client: DataverseClient) -> None:
    row = client.create("leads", lead(), select=["leadid"])
    etag = row["@odata.etag"]
    client.update("leads", row["leadid"], {"jobtitle": "first"}, etag=etag)
    with pytest.raises(ConflictError) as caught:
        client.update("leads", row["leadid"], {"jobtitle": "second"}, etag=etag)
    assert caught.value.code == "0x80060882"
    assert client.get("leads", row["leadid"], select=["jobtitle"])["jobtitle"] == "first"


def test_delete_then_delete_again_is_fine(client: DataverseClient) -> None:
    row = client.create("leads", lead(), select=["leadid"])
    client.delete("leads", row["leadid"])
    client.delete("leads", row["leadid"])
    with pytest.raises(NotFoundError):
        client.get("leads", row["leadid"], select=["leadid"])


def test_upsert_creates_then_updates_by_alternate_key(client: DataverseClient, admin: DataverseAdmin) -> None:
    first = client.upsert_by_key("leads", {"mdsync_marketoid": "77"}, lead())
    second = client.upsert_by_key("leads", {"mdsync_marketoid": "77"}, {"jobtitle": "VP"})
    assert first["leadid"] == second["leadid"]
    assert second["mdsync_marketoid"] == "77"
    assert len(admin.rows("lead")) == 1


def test_create_only_upsert_conflicts_on_an_existing_key(client: DataverseClient) -> None:
    client.upsert_by_key("leads", {"mdsync_marketoid": "5"}, lead(), create_only=True)
    with pytest.raises(ConflictError) as caught:
        client.upsert_by_key("leads", {"mdsync_marketoid": "5"}, lead(), create_only=True)
    assert caught.value.code == "0x80040237"


def test_racing_create_only_upserts_leave_exactly_one_row(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        try:
            client.upsert_by_key("leads", {"mdsync_marketoid": "42"}, lead(), create_only=True)
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]
    assert [r["mdsync_marketoid"] for r in admin.rows("lead")] == ["42"]


def test_alternate_key_uniqueness_is_enforced_on_update(client: DataverseClient) -> None:
    client.create("leads", lead(mdsync_marketoid="1"))
    other = client.create("leads", lead(mdsync_marketoid="2"), select=["leadid"])
    with pytest.raises(ConflictError) as caught:
        client.update("leads", other["leadid"], {"mdsync_marketoid": "1"})
    assert caught.value.code == "0x80060892"
    assert caught.value.status == 412


def test_string_over_max_length_is_rejected_with_the_column(client: DataverseClient) -> None:
    with pytest.raises(ValidationError) as caught:
        client.create("leads", lead(firstname="x" * 51))
    assert caught.value.code == "0x80044331"
    assert caught.value.message == (
        "A validation error occurred. The length of the 'firstname' attribute of the 'lead' entity "
        "exceeded the maximum allowed length of '50'."
    )
    assert caught.value.fields == ("firstname",)


def test_choice_outside_its_options_is_rejected(client: DataverseClient) -> None:
    with pytest.raises(ValidationError) as caught:
        client.create("leads", lead(leadsourcecode=11))
    assert caught.value.code == "0x8004431A"
    assert caught.value.fields == ("leadsourcecode",)


def test_unknown_column_and_wrong_type_are_payload_errors(client: DataverseClient) -> None:
    with pytest.raises(ValidationError) as unknown:
        client.create("leads", lead(shoesize=44))
    assert (
        "The property 'shoesize' does not exist on type 'Microsoft.Dynamics.CRM.lead'"
        in unknown.value.message
    )
    with pytest.raises(ValidationError) as wrong:
        client.create("leads", lead(leadsourcecode="Web"))
    assert "Cannot convert the literal 'Web' to the expected type 'Edm.Int32'" in wrong.value.message
    assert wrong.value.code == "0x80048d19"


def test_application_required_is_not_enforced_but_system_required_is(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    # lastname and subject are ApplicationRequired (business required): the API does not care.
    row = client.create("leads", {"firstname": "NoLast"}, select=["leadid", "lastname"])
    assert row["lastname"] is None
    admin.set_column("lead", "lastname", required_level="SystemRequired")
    with pytest.raises(ValidationError) as caught:
        client.create("leads", {"firstname": "NoLast"})
    assert caught.value.code == "0x80040203"
    assert caught.value.fields == ("lastname",)
    with pytest.raises(ValidationError):
        client.update("leads", row["leadid"], {"lastname": None})


def test_customised_max_length_applies(client: DataverseClient, admin: DataverseAdmin) -> None:
    admin.set_column("lead", "jobtitle", max_length=5)
    with pytest.raises(ValidationError) as caught:
        client.create("leads", lead(jobtitle="Director"))
    assert "maximum allowed length of '5'" in caught.value.message
    assert client.entity_metadata("lead").attributes["jobtitle"].max_length == 5


def test_business_rule_plugin_aborts_with_its_own_message(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    admin.add_plugin(
        "email-format", "lead", "email", column="emailaddress1", message="Enter a valid e-mail address."
    )
    admin.add_plugin(
        "company",
        "lead",
        "required",
        column="companyname",
        message="Company is required.",
        messages=("Create",),
    )
    with pytest.raises(ValidationError) as bad_email:
        client.create("leads", lead(emailaddress1="not-an-address", companyname="Fabrikam"))
    assert (bad_email.value.code, bad_email.value.message) == ("0x80040265", "Enter a valid e-mail address.")
    with pytest.raises(ValidationError) as no_company:
        client.create("leads", lead())
    assert no_company.value.message == "Company is required."
    row = client.create("leads", lead(companyname="Fabrikam"), select=["leadid"])
    admin.remove_plugin("company")
    assert row["leadid"]


def test_state_and_status_must_agree(client: DataverseClient) -> None:
    row = client.create("leads", lead(), select=["leadid"])
    with pytest.raises(ValidationError) as caught:
        client.update("leads", row["leadid"], {"statuscode": 4})
    assert caught.value.code == "0x80040203"
    client.update("leads", row["leadid"], {"statecode": 2, "statuscode": 4})
    after = client.get("leads", row["leadid"], select=["statecode", "statuscode"])
    assert (after["statecode"], after["statuscode"]) == (2, 4)


def test_lookups_bind_and_read_back_with_annotations(client: DataverseClient) -> None:
    account = client.create("accounts", {"name": "Fabrikam"}, select=["accountid"])
    contact = client.create(
        "contacts",
        {"lastname": "Lopez", "parentcustomerid_account@odata.bind": f"/accounts({account['accountid']})"},
        select=["contactid"],
    )
    rows = list(
        client.query(
            "contacts",
            select=["_parentcustomerid_value"],
            filter=f"contactid eq {contact['contactid']}",
            annotations="*",
        )
    )
    assert rows[0]["_parentcustomerid_value"] == account["accountid"]
    assert rows[0]["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Fabrikam"
    assert rows[0]["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert (
        rows[0]["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"]
        == "parentcustomerid_account"
    )
    with pytest.raises(ValidationError) as direct:
        client.update("contacts", contact["contactid"], {"_parentcustomerid_value": account["accountid"]})
    assert "Use Navigation properties instead" in direct.value.message
    with pytest.raises(NotFoundError):
        client.create(
            "contacts", {"lastname": "X", "parentcustomerid_account@odata.bind": f"/accounts({uuid.uuid4()})"}
        )


def test_calls_are_counted_by_endpoint(client: DataverseClient, admin: DataverseAdmin) -> None:
    row = client.create("leads", lead(), select=["leadid"])
    client.update("leads", row["leadid"], {"jobtitle": "x"})
    client.get("leads", row["leadid"], select=["jobtitle"])
    assert client.calls.snapshot() == {"POST leads": 1, "PATCH leads()": 1, "GET leads()": 1}
    assert client.calls.total == 3
    assert admin.calls() == {"POST leads": 1, "PATCH leads()": 1, "GET leads()": 1}
