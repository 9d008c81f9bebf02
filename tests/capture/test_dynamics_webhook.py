"""The dynamics_webhook function, fed what the Dataverse simulator really sends.

Each test makes a change in the simulator as a user, takes the delivery the tap received (the
same steps and images mdsync registers) and hands it to the function as a ``func.HttpRequest``;
then it reads the private queue: exactly what the function queued, before any worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from functions.dynamics_webhook import dynamics_webhook
from mdsync.harness import HOST_KEY, LocalSystem
from shared.dataverse.models import StepSpec
from shared.notices import Entity, FieldChange, Kind, Source
from simulators.dataverse.config import DEFAULT_HUMAN_USER_ID
from simulators.stack import SYNC_USER_ID, WEBHOOK_SECRET, SimulatorStack

from .conftest import HUMAN, App, Tap, isolated_app, request_from, response_json, webhook_request

LEAD = {
    "firstname": "Ana",
    "lastname": "Lopez",
    "emailaddress1": "ana@fabrikam.example",
    "subject": "Web",
    "leadsourcecode": 8,
}


def test_an_update_queues_exactly_one_notice_with_old_and_new_values(app: App) -> None:
    lead_id = app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    app.register_tap()
    app.dataverse_admin.update_as(
        HUMAN, "leads", lead_id, {"jobtitle": "CTO", "leadsourcecode": 7, "lastname": "Lopez"}
    )
    [delivery] = app.deliveries(1)

    response = dynamics_webhook(request_from(delivery))

    assert response.status_code == 202
    [queued] = app.queued()
    notice = queued.notice
    assert queued.message_id == notice.dedup_id == response_json(response)["id"]
    assert (notice.source, notice.entity, notice.kind) == (Source.DYNAMICS, Entity.LEAD, Kind.UPDATED)
    assert notice.record_id == lead_id
    # Submitted columns are reported even when unchanged (the step fired on them); OptionSetValue
    # becomes its number.
    assert notice.changes == {
        "jobtitle": FieldChange(old=None, new="CTO"),
        "lastname": FieldChange(old="Lopez", new="Lopez"),
        "leadsourcecode": FieldChange(old=8, new=7),
    }
    row = app.dataverse_admin.row("lead", lead_id)
    assert row is not None
    assert notice.version == str(row["versionnumber"])
    assert notice.actor == DEFAULT_HUMAN_USER_ID
    assert not notice.own_write
    assert not notice.trimmed
    assert notice.email == "ana@fabrikam.example"


def test_create_delete_and_qualification_are_told_apart(app: App) -> None:
    app.register_tap()
    lead_id = app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    [created] = app.deliveries(1)
    [contact] = app.dataverse_admin.qualify_as(HUMAN, lead_id)
    contact_id = contact["contactid"]
    qualified = app.deliveries(2)  # Create of the contact, Update of the lead's state
    app.dataverse_admin.delete_as(HUMAN, "contacts", contact_id)
    [deleted] = app.deliveries(1)

    for delivery in (created, *qualified, deleted):
        assert dynamics_webhook(request_from(delivery)).status_code == 202
    notices = {(n.entity, n.kind): n for n in app.notices()}

    assert set(notices) == {
        (Entity.LEAD, Kind.CREATED),
        (Entity.CONTACT, Kind.QUALIFIED),
        (Entity.LEAD, Kind.UPDATED),
        (Entity.CONTACT, Kind.DELETED),
    }
    assert notices[Entity.LEAD, Kind.CREATED].changes["leadsourcecode"] == FieldChange(old=None, new=8)
    assert notices[Entity.CONTACT, Kind.QUALIFIED].record_id == contact_id
    assert notices[Entity.CONTACT, Kind.QUALIFIED].originating_lead_id == lead_id
    assert notices[Entity.CONTACT, Kind.DELETED].changes["emailaddress1"] == FieldChange(
        old="ana@fabrikam.example", new=None
    )


def test_a_change_by_the_sync_user_is_marked_own_write(app: App) -> None:
    lead_id = app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    app.register_tap()
    app.deps.dataverse.update("leads", lead_id, {"jobtitle": "CEO"})  # as mdsync's application user
    [delivery] = app.deliveries(1)

    assert dynamics_webhook(request_from(delivery)).status_code == 202
    [notice] = app.notices()
    assert notice.actor == SYNC_USER_ID
    assert notice.own_write


def test_a_notice_carries_the_marketo_id_the_link_column_holds(app: App) -> None:
    linked = app.dataverse_admin.create_as(HUMAN, "leads", {**LEAD, "mdsync_marketoid": "1234"})
    unlinked = app.dataverse_admin.create_as(HUMAN, "leads", {**LEAD, "emailaddress1": "b@fabrikam.example"})
    app.register_tap()
    app.dataverse_admin.update_as(HUMAN, "leads", linked, {"jobtitle": "CTO"})
    app.dataverse_admin.update_as(HUMAN, "leads", unlinked, {"jobtitle": "CFO"})
    app.dataverse_admin.delete_as(HUMAN, "leads", linked)
    for delivery in app.deliveries(3):
        assert dynamics_webhook(request_from(delivery)).status_code == 202

    # From the post-image (the column did not change) and, for the deletion, the pre-image.
    hints = {(n.record_id, n.kind): n.linked_to for n in app.notices()}
    assert hints == {
        (linked, Kind.UPDATED): 1234,
        (unlinked, Kind.UPDATED): None,
        (linked, Kind.DELETED): 1234,
    }


def test_a_retried_delivery_is_queued_once(app: App) -> None:
    lead_id = app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    app.register_tap()
    app.dataverse_admin.update_as(HUMAN, "leads", lead_id, {"jobtitle": "CTO"})
    [delivery] = app.deliveries(1)

    first = dynamics_webhook(request_from(delivery))
    second = dynamics_webhook(request_from(delivery))

    assert first.status_code == second.status_code == 202
    assert response_json(first)["id"] == response_json(second)["id"]
    assert len(app.queued()) == 1


def test_a_trimmed_payload_is_queued_without_values(app: App) -> None:
    lead_id = app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    app.register_tap()
    sender = app.stack.dataverse.state.webhooks
    limit, sender.size_limit = sender.size_limit, 1_000  # every payload is "over 256 KB" now
    try:
        app.dataverse_admin.update_as(HUMAN, "leads", lead_id, {"jobtitle": "CTO"})
        [delivery] = app.deliveries(1)
    finally:
        sender.size_limit = limit
    assert "x-ms-dynamics-msg-size-exceeded" in delivery.headers
    assert "PostEntityImages" not in delivery.context

    assert dynamics_webhook(request_from(delivery)).status_code == 202
    [notice] = app.notices()
    assert (notice.record_id, notice.kind, notice.trimmed) == (lead_id, Kind.UPDATED, True)
    assert notice.changes == {}


def test_tables_and_messages_not_synced_are_ignored_with_200(app: App, tap: Tap) -> None:
    app.register_tap()
    app.deps.dataverse.register_webhook(
        "capture-accounts",
        tap.url,
        {"x-mdsync-key": WEBHOOK_SECRET},
        [StepSpec("account", "Create")],
    )
    app.dataverse_admin.create_as(HUMAN, "accounts", {"name": "Fabrikam"})
    [account] = app.deliveries(1)
    app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    [created] = app.deliveries(1)
    assign = json.loads(created.body)
    assign["MessageName"] = "Assign"

    for request in (
        request_from(account),
        webhook_request(json.dumps(assign).encode(), created.headers),
    ):
        response = dynamics_webhook(request)
        assert response.status_code == 200
        assert response_json(response)["status"] == "ignored"
    assert app.queued() == []


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"x_mdsync_key": None}, 401, "x-mdsync-key"),
        ({"x_mdsync_key": "wrong-secret-0123456789"}, 401, "x-mdsync-key"),
        ({"x_mdsync_key": WEBHOOK_SECRET[:-1]}, 401, "x-mdsync-key"),
        ({"content_type": "text/plain"}, 415, "application/json"),
        ({"content_type": None}, 415, "application/json"),
    ],
)
def test_a_wrong_key_or_content_type_is_refused_and_nothing_is_queued(
    app: App, changes: dict[str, str | None], status: int, words: str
) -> None:
    lead_id = app.dataverse_admin.create_as(HUMAN, "leads", LEAD)
    app.register_tap()
    app.dataverse_admin.update_as(HUMAN, "leads", lead_id, {"jobtitle": "CTO"})
    [delivery] = app.deliveries(1)

    response = dynamics_webhook(request_from(delivery, **changes))

    assert response.status_code == status
    assert words in response_json(response)["error"]
    assert app.queued() == []


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"MessageName": "Update"}', 400, "PrimaryEntityName"),
        (b'{"MessageName": "Update", "PrimaryEntityName": "lead", "PrimaryEntityId": "nope"}', 400, "UUID"),
        (b'{"a": NaN}', 400, "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"a": "' + b"x" * (1024 * 1024) + b'"}', 413, "exceeds"),
    ],
)
def test_malformed_bodies_get_a_clear_4xx(app: App, body: bytes, status: int, words: str) -> None:
    headers = {"x-mdsync-key": WEBHOOK_SECRET, "content-type": "application/json"}
    response = dynamics_webhook(webhook_request(body, headers))
    assert response.status_code == status
    assert words in response_json(response)["error"]
    assert app.queued() == []


def test_a_queue_that_cannot_take_the_notice_gets_503_with_retry_after(
    capture_stack: SimulatorStack, tap: Tap, tmp_path: Path
) -> None:
    # A directory where the SQLite file should be: the queue cannot open it.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    with isolated_app(capture_stack, tap, tmp_path / "app", MDSYNC_SQLITE_PATH=str(blocked)):
        body = {
            "MessageName": "Update",
            "PrimaryEntityName": "lead",
            "PrimaryEntityId": "7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c",
            "OperationCreatedOn": "/Date(1731500000000)/",
        }
        headers = {"x-mdsync-key": WEBHOOK_SECRET, "content-type": "application/json; charset=utf-8"}
        response = dynamics_webhook(webhook_request(json.dumps(body).encode(), headers))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "retry later" in response_json(response)["error"]


def test_the_host_refuses_a_missing_function_key(system: LocalSystem) -> None:
    """The Functions host checks the function key before mdsync runs (AuthLevel.FUNCTION)."""
    assert system.host is not None
    url = system.host.function_url("dynamics_webhook")
    body = json.dumps({"MessageName": "Update"}).encode()
    with requests.Session() as session:
        session.verify = str(system.stack.tls.ca_file)
        session.trust_env = False
        without_key = session.post(url, data=body, headers={"x-mdsync-key": WEBHOOK_SECRET}, timeout=10)
        wrong_secret = session.post(
            url, data=body, headers={"x-functions-key": HOST_KEY, "x-mdsync-key": "nope"}, timeout=10
        )
    assert without_key.status_code == 401
    assert wrong_secret.status_code == 401
    assert system.queue.active_count() == 0
