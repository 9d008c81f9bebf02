"""End to end: the Marketo simulator runs the Call Webhook flow step as a trigger campaign would,
over HTTPS, to the function served by the local host; its response mappings store the outcome."""

from __future__ import annotations

import json

from mdsync.harness import HOST_KEY, LocalSystem
from simulators.stack import FLOW_STEP_SECRET

from .conftest import flow_url, leads, new_person

CALL_WEBHOOK = 110


def test_marketo_fires_the_flow_step_and_the_lead_appears_in_dynamics(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example", title="CTO")

    fired = system.fire_flow_step(pid)

    assert fired["status"] == 200
    assert fired["errorType"] is None
    body = json.loads(fired["body"])
    assert body["status"] == "created"
    (lead,) = leads(system)
    assert (lead["leadid"], lead["mdsync_marketoid"], lead["jobtitle"]) == (
        body["dynamicsId"],
        str(pid),
        "CTO",
    )
    assert sorted(fired["mappedFields"]) == ["mdsyncFlowStepDynamicsId", "mdsyncFlowStepStatus"]
    person = system.marketo_admin.person(pid)
    assert (person["mdsyncFlowStepStatus"], person["mdsyncFlowStepDynamicsId"]) == ("created", lead["leadid"])
    assert person["msftLeadId"] == lead["leadid"]
    (activity,) = system.marketo_admin.activities(pid, [CALL_WEBHOOK])
    assert activity["primaryAttributeValue"] == "Sync Person to Microsoft"

    again = system.fire_flow_step(pid)

    assert json.loads(again["body"]) == {"status": "exists", "dynamicsId": lead["leadid"], "entity": "lead"}
    assert system.marketo_admin.person(pid)["mdsyncFlowStepStatus"] == "exists"
    assert len(leads(system)) == 1


def test_a_form_encoded_webhook_works_too(system: LocalSystem) -> None:
    system.marketo_admin.define_webhook(
        "Sync Person to Microsoft (form)",
        flow_url(system),
        template="marketoId={{lead.Id}}&email={{lead.Email Address}}",
        encoding="form-url",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "x-functions-key": HOST_KEY,
            "x-mdsync-key": FLOW_STEP_SECRET,
        },
        response_mappings={"status": "mdsyncFlowStepStatus", "dynamicsId": "mdsyncFlowStepDynamicsId"},
    )
    pid = new_person(system, email="ana+events@fabrikam.example")

    fired = system.marketo_admin.fire_webhook("Sync Person to Microsoft (form)", pid)

    assert fired["status"] == 200
    (lead,) = leads(system)
    assert lead["emailaddress1"] == "ana+events@fabrikam.example"
    assert system.marketo_admin.person(pid)["mdsyncFlowStepDynamicsId"] == lead["leadid"]


def test_a_validation_failure_is_mapped_back_as_failed(system: LocalSystem) -> None:
    system.dataverse_admin.set_column("lead", "companyname", required_level="SystemRequired")
    pid = system.marketo_admin.user_create({"email": "ana@fabrikam.example", "lastName": "Lopez"})

    fired = system.fire_flow_step(pid)

    assert fired["status"] == 200
    assert json.loads(fired["body"])["status"] == "failed"
    person = system.marketo_admin.person(pid)
    assert (person["mdsyncFlowStepStatus"], person["mdsyncFlowStepDynamicsId"]) == ("failed", None)
    assert leads(system) == []


def test_an_unavailable_dataverse_is_an_error_marketo_records_without_mapping(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    system.dataverse_admin.fail(count=1000, status=503)
    try:
        fired = system.fire_flow_step(pid)
    finally:
        system.dataverse_admin.clear_faults()

    assert fired["status"] == 503
    assert fired["errorType"] == "Service Unavailable"
    assert fired["mappedFields"] == []
    assert system.marketo_admin.person(pid)["mdsyncFlowStepStatus"] is None
    assert leads(system) == []
