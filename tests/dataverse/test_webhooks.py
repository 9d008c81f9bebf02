"""Webhook steps registered the documented way fire like the platform: async, after commit,
with the RemoteExecutionContext body, images, headers and the endpoint's authentication."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.dataverse import webhooks
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import StepSpec
from simulators.dataverse.admin import AdminError, DataverseAdmin
from simulators.dataverse.config import DEFAULT_HUMAN_USER_ID

from .conftest import APP_USER, HUMAN, Receiver, lead

SECRET = "s3cret-header-value-0123456789"
LEAD_COLUMNS = ("firstname", "lastname", "emailaddress1", "statecode", "statuscode", "ownerid")


def kv(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {i["key"]: i["value"] for i in items}


def body_of(delivery: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(delivery.body)
    return data


def register(client: DataverseClient, receiver: Receiver, *steps: StepSpec) -> None:
    client.register_webhook("mdsync", receiver.url, {"x-mdsync-key": SECRET}, list(steps))


def delivered(admin: DataverseAdmin, receiver: Receiver) -> list[Any]:
    assert admin.wait_for_webhooks(60)
    return receiver.take()


def test_create_by_a_human_is_delivered_with_context_headers_and_images(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Create", post_image=()))
    lead_id = admin.create_as(HUMAN, "leads", lead(leadsourcecode=8, revenue=250000))
    [delivery] = delivered(admin, receiver)
    assert delivery.headers["x-mdsync-key"] == SECRET
    assert delivery.headers["x-ms-dynamics-entity-name"] == "lead"
    assert delivery.headers["x-ms-dynamics-request-name"] == "Create"
    assert delivery.headers["x-ms-dynamics-organization"].startswith("localhost:")
    assert delivery.headers["content-type"].startswith("application/json")
    assert "x-ms-dynamics-msg-size-exceeded" not in delivery.headers
    raw = delivery.body.decode()
    assert "\\/Date(" in raw  # DataContract escapes "/"
    context = body_of(delivery)
    assert list(context) == sorted(context)
    assert context["MessageName"] == "Create"
    assert (context["PrimaryEntityName"], context["PrimaryEntityId"]) == ("lead", lead_id)
    assert context["InitiatingUserId"] == context["UserId"] == DEFAULT_HUMAN_USER_ID
    assert (context["Stage"], context["Mode"], context["Depth"]) == (40, 1, 1)
    assert delivery.headers["x-ms-correlation-request-id"] == context["CorrelationId"]
    assert kv(context["OutputParameters"]) == {"id": lead_id}
    target = kv(context["InputParameters"])["Target"]
    assert target["__type"] == "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"
    attributes = kv(target["Attributes"])
    assert attributes["emailaddress1"] == "ana@fabrikam.example"
    assert attributes["leadsourcecode"] == {
        "__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts",
        "Value": 8,
    }
    assert attributes["revenue"]["Value"] == 250000.0
    assert attributes["ownerid"]["LogicalName"] == "systemuser"
    assert attributes["ownerid"]["Id"] == DEFAULT_HUMAN_USER_ID
    assert re.fullmatch(r"/Date\(\d+\)/", attributes["createdon"])
    images = kv(context["PostEntityImages"])
    assert set(images) == {"AsynchronousStepPrimaryName", "PostImage"}
    assert "__type" not in images["PostImage"]
    assert kv(images["PostImage"]["FormattedValues"])["leadsourcecode"] == "Web"
    assert context["PreEntityImages"] == []
    assert context["ParentContext"]["Stage"] == 30


def test_the_sync_users_own_writes_carry_its_user_id(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Create"))
    client.create("leads", lead())
    [delivery] = delivered(admin, receiver)
    assert body_of(delivery)["InitiatingUserId"] == APP_USER


def test_update_honours_filtering_attributes_and_carries_both_images(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(
        client,
        receiver,
        StepSpec(
            "lead",
            "Update",
            filtering_attributes=("emailaddress1", "lastname"),
            pre_image=LEAD_COLUMNS,
            post_image=LEAD_COLUMNS,
        ),
    )
    lead_id = admin.seed("lead", [lead()])[0]
    admin.update_as(HUMAN, "leads", lead_id, {"jobtitle": "not watched"})
    assert delivered(admin, receiver) == []
    admin.update_as(HUMAN, "leads", lead_id, {"emailaddress1": "ana@new.example"})
    [delivery] = delivered(admin, receiver)
    context = body_of(delivery)
    target = kv(kv(context["InputParameters"])["Target"]["Attributes"])
    assert target["emailaddress1"] == "ana@new.example"
    assert "jobtitle" not in target
    assert {"modifiedon", "modifiedby", "leadid"} <= set(target)
    pre = kv(kv(context["PreEntityImages"])["PreImage"]["Attributes"])
    post = kv(kv(context["PostEntityImages"])["PostImage"]["Attributes"])
    assert (pre["emailaddress1"], post["emailaddress1"]) == ("ana@fabrikam.example", "ana@new.example")
    assert "jobtitle" not in post  # images carry the registered columns only


def test_state_change_with_other_columns_raises_two_updates(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Update"))
    lead_id = admin.seed("lead", [lead()])[0]
    client.update("leads", lead_id, {"jobtitle": "CTO", "statecode": 2, "statuscode": 6})
    deliveries = delivered(admin, receiver)
    targets = [set(kv(kv(body_of(d)["InputParameters"])["Target"]["Attributes"])) for d in deliveries]
    assert len(targets) == 2
    assert "jobtitle" in targets[0]
    assert "statecode" not in targets[0]
    assert {"statecode", "statuscode"} <= targets[1]
    assert "jobtitle" not in targets[1]


def test_delete_carries_a_reference_and_the_pre_image(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(
        client, receiver, StepSpec("lead", "Delete", pre_image=("emailaddress1", "fullname"), post_image=())
    )
    lead_id = admin.seed("lead", [lead()])[0]
    admin.delete_as(HUMAN, "leads", lead_id)
    [delivery] = delivered(admin, receiver)
    context = body_of(delivery)
    target = kv(context["InputParameters"])["Target"]
    assert target["__type"].startswith("EntityReference:")
    assert (target["Id"], target["LogicalName"]) == (lead_id, "lead")
    assert (
        kv(kv(context["PreEntityImages"])["PreImage"]["Attributes"])["emailaddress1"]
        == "ana@fabrikam.example"
    )
    assert context["PostEntityImages"] == []
    assert context["OutputParameters"] == []


def test_qualification_fires_contact_create_and_lead_update(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(
        client,
        receiver,
        StepSpec("contact", "Create"),
        StepSpec("lead", "Update", filtering_attributes=("statecode",)),
    )
    lead_id = admin.seed("lead", [lead(companyname="Fabrikam")])[0]
    made = admin.qualify_as(HUMAN, lead_id, create_account=True)
    contact_id = next(str(item["contactid"]) for item in made if "contactid" in item)
    contexts = {body_of(d)["PrimaryEntityName"]: body_of(d) for d in delivered(admin, receiver)}
    created = kv(kv(contexts["contact"]["InputParameters"])["Target"]["Attributes"])
    assert created["originatingleadid"]["Id"] == lead_id
    assert created["originatingleadid"]["LogicalName"] == "lead"
    assert created["parentcustomerid"]["LogicalName"] == "account"
    updated = kv(kv(contexts["lead"]["InputParameters"])["Target"]["Attributes"])
    assert (updated["statecode"]["Value"], updated["statuscode"]["Value"]) == (1, 3)
    contact = client.get("contacts", contact_id, select=["_originatingleadid_value", "emailaddress1"])
    assert contact["_originatingleadid_value"] == lead_id
    with pytest.raises(AdminError) as again:
        admin.qualify_as(HUMAN, lead_id)
    assert again.value.status == 400
    assert "0x80040519" in str(again.value.body)


def test_payload_over_256_kb_is_trimmed(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    admin.set_column("lead", "description", max_length=300_000)
    register(client, receiver, StepSpec("lead", "Create", post_image=()))
    lead_id = client.create("leads", lead(description="d" * 100_000), select=["leadid"])["leadid"]
    [delivery] = delivered(admin, receiver)
    assert "x-ms-dynamics-msg-size-exceeded" in delivery.headers
    assert len(delivery.body) < 256 * 1024
    context = body_of(delivery)
    for removed in ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"):
        assert removed not in context
    assert context["PrimaryEntityId"] == lead_id
    assert admin.jobs()[-1]["size_exceeded"] is True


def test_dropped_delivery_is_recorded_and_never_arrives(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Create"))
    admin.drop_webhooks(1)
    client.create("leads", lead(lastname="lost"))
    client.create("leads", lead(lastname="kept"))
    [delivery] = delivered(admin, receiver)
    target = kv(kv(body_of(delivery)["InputParameters"])["Target"]["Attributes"])
    assert target["lastname"] == "kept"
    jobs = admin.jobs()
    assert [(j["dropped"], j["statuscode"]) for j in jobs] == [(True, 31), (False, 30)]


def test_one_more_attempt_on_503_only(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Create"))
    receiver.answer(503)
    client.create("leads", lead())
    assert len(delivered(admin, receiver)) == 2
    receiver.clear()
    receiver.answer(500)
    client.create("leads", lead())
    assert len(delivered(admin, receiver)) == 1
    jobs = admin.jobs()
    assert [(j["statuscode"], j["http_statuses"]) for j in jobs] == [(30, [503, 200]), (31, [500])]
    assert "500" in jobs[1]["message"]


def test_duplicate_delivery_fault(client: DataverseClient, admin: DataverseAdmin, receiver: Receiver) -> None:
    register(client, receiver, StepSpec("lead", "Create"))
    admin.duplicate_webhooks(1)
    client.create("leads", lead())
    first, second = delivered(admin, receiver)
    assert first.body == second.body


def test_bulk_create_fires_one_event_per_row(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Create"))
    ids = client.create_multiple("leads", "lead", [lead(lastname=n) for n in ("A", "B", "C")])
    assert sorted(body_of(d)["PrimaryEntityId"] for d in delivered(admin, receiver)) == sorted(ids)


def test_webhook_key_and_query_string_authentication(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    message = next(iter(client.query("sdkmessages", select=["sdkmessageid"], filter="name eq 'Create'")))[
        "sdkmessageid"
    ]
    message_filter = next(
        iter(
            client.query(
                "sdkmessagefilters",
                select=["sdkmessagefilterid"],
                filter=f"_sdkmessageid_value eq {message} and primaryobjecttypecode eq 'account'",
            )
        )
    )["sdkmessagefilterid"]
    for authtype, value in (
        (4, "function-key"),
        (6, '<settings><setting name="sig" value="a&amp;b" /></settings>'),
    ):
        endpoint = client.create(
            "serviceendpoints",
            {
                "name": f"auth{authtype}",
                "url": receiver.url,
                "contract": 8,
                "authtype": authtype,
                "authvalue": value,
            },
            select=["serviceendpointid"],
        )
        client.create(
            "sdkmessageprocessingsteps",
            {
                "name": f"auth{authtype}",
                "stage": 40,
                "mode": 1,
                "rank": 1,
                "eventhandler_serviceendpoint@odata.bind": (
                    f"/serviceendpoints({endpoint['serviceendpointid']})"
                ),
                "sdkmessageid@odata.bind": f"/sdkmessages({message})",
                "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({message_filter})",
            },
        )
    client.create("accounts", {"name": "Fabrikam"})
    queries = sorted((d.query for d in delivered(admin, receiver)), key=str)
    assert queries == [{"code": "function-key"}, {"sig": "a&b"}]
    assert "authvalue" not in client.get("serviceendpoints", endpoint["serviceendpointid"], select=["name"])


def test_registration_is_idempotent_and_unregister_stops_deliveries(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    register(client, receiver, StepSpec("lead", "Create", post_image=()))
    register(client, receiver, StepSpec("lead", "Create", post_image=()))
    client.create("leads", lead())
    assert len(delivered(admin, receiver)) == 1
    assert webhooks.unregister(client, "mdsync") == 1
    receiver.clear()
    client.create("leads", lead())
    assert delivered(admin, receiver) == []
    assert list(client.query("sdkmessageprocessingstepimages", select=["name"])) == []
