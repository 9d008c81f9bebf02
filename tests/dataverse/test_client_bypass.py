"""The client's writes of leads and contacts bypass mdsync's own webhook steps, and a refused
header never costs a write: single requests, bulk messages, ``$batch`` parts and change sets."""

from __future__ import annotations

import pytest
import requests

from shared.dataverse.auth import CredentialTokens
from shared.dataverse.bypass import OwnSteps, messages_of
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import BatchRequest, StepSpec
from simulators.dataverse.admin import DataverseAdmin

from .conftest import APP_USER, Receiver, Sims, lead

STEPS = [StepSpec("lead", "Create"), StepSpec("lead", "Update", filtering_attributes=("jobtitle",))]


@pytest.fixture
def own() -> OwnSteps:
    return OwnSteps("mdsync")


@pytest.fixture
def bypassing(sims: Sims, http: requests.Session, tokens: CredentialTokens, own: OwnSteps) -> DataverseClient:
    return DataverseClient(sims.api_url, tokens, session=http, sleep=lambda s: None, own_steps=own)


def title(admin: DataverseAdmin, lead_id: str) -> object:
    row = admin.row("lead", lead_id)
    assert row is not None
    return row["jobtitle"]


def ours(admin: DataverseAdmin, receiver: Receiver) -> int:
    assert admin.wait_for_webhooks(60)
    count = len(receiver.take())
    receiver.clear()
    return count


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("POST", "leads", {}, ("lead", ("Create",))),
        ("POST", "contacts/Microsoft.Dynamics.CRM.UpdateMultiple", {}, ("contact", ("Update",))),
        ("POST", "leads/Microsoft.Dynamics.CRM.UpsertMultiple", {}, ("lead", ("Create", "Update"))),
        ("PATCH", "leads(1f0c1a8e-0000-4000-8000-000000000001)", {"If-Match": "*"}, ("lead", ("Update",))),
        ("PATCH", "leads(mdsync_marketoid='7')", {"If-None-Match": "*"}, ("lead", ("Create",))),
        ("PATCH", "contacts(mdsync_marketoid='7')?$select=x", {}, ("contact", ("Create", "Update"))),
        ("GET", "leads", {}, None),
        ("DELETE", "leads(1f0c1a8e-0000-4000-8000-000000000001)", {}, None),
        ("POST", "leads(1f0c1a8e-0000-4000-8000-000000000001)/Microsoft.Dynamics.CRM.QualifyLead", {}, None),
        ("POST", "accounts", {}, None),
        ("POST", "$batch", {}, None),
    ],
)
def test_only_mdsyncs_writes_of_leads_and_contacts_name_steps(
    method: str, path: str, headers: dict[str, str], expected: object
) -> None:
    assert messages_of(method, path, headers) == expected


def test_writes_bypass_our_steps_in_every_form(
    bypassing: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    bypassing.register_webhook("mdsync", receiver.url, {"x-mdsync-key": "k" * 20}, STEPS)
    created = bypassing.create("leads", lead(), select=["leadid"])
    lead_id = str(created["leadid"])
    bypassing.update("leads", lead_id, {"jobtitle": "A"})
    bypassing.update_multiple("leads", "lead", [{"leadid": lead_id, "jobtitle": "B"}])
    answers = bypassing.batch(
        [BatchRequest("PATCH", f"leads({lead_id})", {"jobtitle": "C"}, {"If-Match": "*"})],
        continue_on_error=True,
    )
    assert [a.status for a in answers] == [204]
    assert ours(admin, receiver) == 0
    # The same writes without the client's steps run the webhook.
    admin.update_as("Jane Doe", "leads", lead_id, {"jobtitle": "D"})
    assert ours(admin, receiver) == 1


def test_a_refused_header_is_sent_again_without_it_once(
    bypassing: DataverseClient, own: OwnSteps, admin: DataverseAdmin, receiver: Receiver
) -> None:
    bypassing.register_webhook("mdsync", receiver.url, {"x-mdsync-key": "k" * 20}, STEPS)
    first, second = admin.seed("lead", [lead(), lead()])
    admin.grant_bypass(APP_USER, granted=False)
    assert len(own.ids(bypassing, [("lead", "Create"), ("lead", "Update")])) == 2  # read once, kept
    before = bypassing.calls.total
    answers = bypassing.batch(
        [
            BatchRequest("PATCH", f"leads({first})", {"jobtitle": "A"}, {"If-Match": "*"}),
            BatchRequest("PATCH", f"leads({second})", {"jobtitle": "B"}, {"If-Match": "*"}),
        ],
        continue_on_error=True,
    )
    assert [a.status for a in answers] == [204, 204]
    assert own.refused
    assert bypassing.calls.total - before == 2  # the refused batch and the one without the header
    assert [title(admin, i) for i in (first, second)] == ["A", "B"]
    bypassing.update("leads", first, {"jobtitle": "C"})
    assert bypassing.calls.total - before == 3  # no header any more, so nothing to refuse
    assert ours(admin, receiver) == 3


@pytest.mark.parametrize("form", ["stop-on-error batch", "change set", "single create"])
def test_a_refusal_in_any_form_writes_everything_once(
    form: str, bypassing: DataverseClient, own: OwnSteps, admin: DataverseAdmin, receiver: Receiver
) -> None:
    bypassing.register_webhook("mdsync", receiver.url, {"x-mdsync-key": "k" * 20}, STEPS)
    admin.grant_bypass(APP_USER, granted=False)
    admin.set_bulk_support("lead", False)  # create_multiple is one change set
    if form == "stop-on-error batch":
        first, second = admin.seed("lead", [lead(), lead()])
        answers = bypassing.batch(
            [
                BatchRequest("PATCH", f"leads({first})", {"jobtitle": "A"}, {"If-Match": "*"}),
                BatchRequest("PATCH", f"leads({second})", {"jobtitle": "B"}, {"If-Match": "*"}),
            ]
        )
        assert [a.status for a in answers] == [204, 204]
    elif form == "change set":
        ids = bypassing.create_multiple("leads", "lead", [lead(lastname="One"), lead(lastname="Two")])
        assert len(ids) == 2
    else:
        bypassing.create("leads", lead(lastname="Solo"))
    assert own.refused
    written = 1 if form == "single create" else 2
    assert ours(admin, receiver) == written
    assert len(admin.rows("lead")) == written
