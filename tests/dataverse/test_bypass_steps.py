"""The simulator honours ``MSCRM.BypassBusinessLogicExecutionStepIds`` as documented: the named
steps do not run for that request, every other step does, the caller needs
prvBypassCustomBusinessLogic, and a request names at most the organization's limit of steps."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from shared.dataverse import batch as batch_body
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import BatchRequest, StepSpec, WebhookRegistration
from simulators.dataverse.admin import DataverseAdmin

from .conftest import APP_USER, HUMAN, Receiver, lead

HEADER = "MSCRM.BypassBusinessLogicExecutionStepIds"
OURS, THEIRS = "ours-0123456789abcdef", "theirs-0123456789abcdef"
LEAD_STEPS = (StepSpec("lead", "Create"), StepSpec("lead", "Update", filtering_attributes=("jobtitle",)))


def register(client: DataverseClient, receiver: Receiver, name: str, key: str) -> WebhookRegistration:
    return client.register_webhook(name, receiver.url, {"x-mdsync-key": key}, list(LEAD_STEPS))


def keys_delivered(admin: DataverseAdmin, receiver: Receiver) -> list[str]:
    assert admin.wait_for_webhooks(60)
    keys = [d.headers["x-mdsync-key"] for d in receiver.take()]
    receiver.clear()
    return sorted(keys)


def title(admin: DataverseAdmin, lead_id: str) -> Any:
    row = admin.row("lead", lead_id)
    assert row is not None
    return row["jobtitle"]


def patch(admin: DataverseAdmin, user: str, lead_id: str, ids: str | None, title: str) -> requests.Response:
    headers = {"If-Match": "*", **({HEADER: ids} if ids is not None else {})}
    return admin.as_user(user, "PATCH", f"leads({lead_id})", {"jobtitle": title}, headers=headers)


def test_the_named_steps_do_not_run_and_every_other_step_does(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    ours = register(client, receiver, "mdsync", OURS)
    register(client, receiver, "customer", THEIRS)
    create, update = ours.step_ids
    response = admin.as_user(APP_USER, "POST", "leads", lead(), headers={HEADER: create})
    assert response.status_code == 204, response.text
    assert keys_delivered(admin, receiver) == [THEIRS]
    lead_id = response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    # A named step that would not run for the request is ignored: ours still fires on Update.
    assert patch(admin, APP_USER, lead_id, create, "CFO").status_code == 204
    assert keys_delivered(admin, receiver) == [OURS, THEIRS]
    # Both of ours named (quoted and spaced as in Microsoft's example): only the customer's runs.
    assert patch(admin, APP_USER, lead_id, f'"{create}, {update}"', "CEO").status_code == 204
    assert keys_delivered(admin, receiver) == [THEIRS]
    assert title(admin, lead_id) == "CEO"
    # The bypass is per request: the next one without the header runs every step.
    assert patch(admin, APP_USER, lead_id, None, "CTO").status_code == 204
    assert keys_delivered(admin, receiver) == [OURS, THEIRS]
    skipped = [job for job in admin.jobs() if job["owningextensionid"] in ours.step_ids]
    assert len(skipped) == 2  # no system job for a bypassed step


def test_a_caller_without_the_privilege_is_refused_and_nothing_changes(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    ours = register(client, receiver, "mdsync", OURS)
    lead_id = admin.seed("lead", [lead(jobtitle="CFO")])[0]
    response = patch(admin, HUMAN, lead_id, ours.step_ids[1], "CEO")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "0x80040220"
    assert "prvBypassCustomBusinessLogic" in error["message"]
    assert title(admin, lead_id) == "CFO"
    assert keys_delivered(admin, receiver) == []

    admin.grant_bypass(APP_USER, granted=False)
    assert patch(admin, APP_USER, lead_id, ours.step_ids[1], "CEO").status_code == 403
    admin.grant_bypass(HUMAN)
    assert patch(admin, HUMAN, lead_id, ours.step_ids[1], "CEO").status_code == 204
    assert keys_delivered(admin, receiver) == []
    assert title(admin, lead_id) == "CEO"


def test_at_most_the_limit_of_step_ids_and_only_guids(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    ours = register(client, receiver, "mdsync", OURS)
    lead_id = admin.seed("lead", [lead()])[0]
    others = ("6f1c3a52-0000-4000-8000-000000000001", "6f1c3a52-0000-4000-8000-000000000002")
    four = ",".join([*ours.step_ids, *others])
    for value in (four, "not-a-guid", ""):
        response = patch(admin, APP_USER, lead_id, value, "CEO")
        assert response.status_code == 400, value
        assert "BypassBusinessLogicExecutionStepIds" in response.json()["error"]["message"]
    admin.set_bypass_limit(5)
    assert patch(admin, APP_USER, lead_id, four, "CEO").status_code == 204
    assert keys_delivered(admin, receiver) == []


def _batch(admin: DataverseAdmin, user: str, parts: list[Any], headers: dict[str, str]) -> list[int]:
    content_type, body = batch_body.build(parts, "/api/data/v9.2")
    response = admin.session.post(
        f"{admin.base_url}/admin/as/{quote(user, safe='')}/$batch",
        data=body,
        headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error", **headers},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return [r.status for r in batch_body.parse(response.headers["Content-Type"], response.content)]


def test_in_a_batch_each_request_takes_its_own_header_or_the_batchs(
    client: DataverseClient, admin: DataverseAdmin, receiver: Receiver
) -> None:
    ours = register(client, receiver, "mdsync", OURS)
    update = ours.step_ids[1]
    first, second, third = admin.seed("lead", [lead(), lead(), lead()])
    parts: list[Any] = [
        BatchRequest("PATCH", f"leads({first})", {"jobtitle": "A"}, {"If-Match": "*"}),
        BatchRequest(
            "PATCH", f"leads({second})", {"jobtitle": "B"}, {"If-Match": "*", HEADER: ours.step_ids[0]}
        ),
        [BatchRequest("PATCH", f"leads({third})", {"jobtitle": "C"}, {"If-Match": "*"})],
    ]
    assert _batch(admin, APP_USER, parts, {HEADER: update}) == [204, 204, 204]
    # The batch's header bypassed ours for the first and third; the second named another step.
    assert keys_delivered(admin, receiver) == [OURS]

    # Without the privilege only the requests that carry the header are refused, each alone.
    parts = [
        BatchRequest("PATCH", f"leads({first})", {"jobtitle": "D"}, {"If-Match": "*", HEADER: update}),
        BatchRequest("PATCH", f"leads({second})", {"jobtitle": "E"}, {"If-Match": "*"}),
    ]
    assert _batch(admin, HUMAN, parts, {}) == [403, 204]
    assert [title(admin, i) for i in (first, second)] == ["A", "E"]
    assert keys_delivered(admin, receiver) == [OURS]
