"""The marketo_change function, fed what the Marketo simulator's trigger campaign really sends.

Each test defines the webhook and the campaign as docs/marketo-setup.md says, makes a change as
a Marketo user, takes the Call Webhook request the tap received and hands it to the function as a
``func.HttpRequest``; then it reads the private queue: exactly what the function queued.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.marketo_change import marketo_change
from shared.bootstrap import reset_container
from shared.capture.marketo_campaign import webhook_template
from shared.capture.marketo_poll import API_SOURCE
from shared.errors import ServiceUnavailableError
from shared.notices import FieldChange, Kind, Notice, Source
from simulators.stack import MARKETO_WEBHOOK_SECRET, SimulatorStack

from .conftest import App, Delivery, Tap, app_settings, response_json, webhook_request

WEBHOOK = "mdsync change notice"
CAMPAIGN = "mdsync: person changed"
HEADERS = {"Content-Type": "application/json", "x-mdsync-key": MARKETO_WEBHOOK_SECRET}
URL = "/api/marketo/change"


@pytest.fixture
def campaign(app: App) -> App:
    mapped = app.deps.mapping.marketo_names()
    names = {f.name: f.display_name for f in app.deps.marketo.describe_leads()}
    app.marketo_admin.define_webhook(
        WEBHOOK, app.tap.url, template=webhook_template(names, mapped), encoding="json", headers=HEADERS
    )
    app.marketo_admin.define_campaign(
        CAMPAIGN, WEBHOOK, changed=sorted(mapped), created=True, source_is_not=[API_SOURCE]
    )
    return app


def calls(app: App, expected: int) -> list[Delivery]:
    assert app.marketo_admin.wait_for_campaigns(10)
    taken = app.tap.take()
    assert len(taken) == expected, [d.body for d in taken]
    return taken


def deliver(delivery: Delivery) -> tuple[int, dict[str, object]]:
    response = marketo_change(webhook_request(delivery.body, delivery.headers, url=URL))
    return response.status_code, response_json(response)


def seed(app: App) -> int:
    [lead_id] = app.stack.marketo.state.seed(
        [{"email": "ana@example.com", "firstName": "Ana", "title": "Dev"}]
    )
    return lead_id


def test_a_user_edit_queues_a_notice_carrying_the_values_without_a_marketo_call(campaign: App) -> None:
    app = campaign
    lead_id = seed(app)
    before = app.deps.marketo.calls.total
    app.stack.marketo.state.user_edit(lead_id, {"title": "CTO", "unsubscribed": True})
    [call] = calls(app, 1)  # one campaign run: the unmapped field does not trigger it

    status, body = deliver(call)

    assert status == 202
    [notice] = app.notices()
    assert body == {"status": "queued", "id": notice.dedup_id}
    assert (notice.source, notice.kind, notice.record_id) == (Source.MARKETO, Kind.UPDATED, str(lead_id))
    assert notice.snapshot
    assert not notice.own_write
    assert not notice.trimmed
    mapped = app.deps.mapping.marketo_names()
    assert set(notice.changes) == mapped & set(json.loads(call.body)["values"])
    assert notice.changes["title"] == FieldChange(old=None, new="CTO")
    assert notice.changes["firstName"] == FieldChange(old=None, new="Ana")
    assert "unsubscribed" not in notice.changes
    assert app.deps.marketo.calls.total == before  # no REST call, only the describe before


def test_a_person_created_in_marketo_queues_a_created_notice(campaign: App) -> None:
    app = campaign
    lead_id = app.stack.marketo.state.user_create({"email": "nia@example.com", "firstName": "Nia"})
    [call] = calls(app, 1)
    body = json.loads(call.body)
    body["event"] = "created"  # the webhook of a "Person is Created" campaign says so

    assert deliver(Delivery(call.headers, json.dumps(body).encode()))[0] == 202
    [notice] = app.notices()
    assert (notice.kind, notice.record_id) == (Kind.CREATED, str(lead_id))
    assert notice.changes["email"] == FieldChange(new="nia@example.com")


def test_writes_through_the_rest_api_do_not_run_the_campaign(campaign: App) -> None:
    app = campaign
    lead_id = seed(app)
    app.deps.marketo.push_leads([{"id": lead_id, "title": "VP"}], action="updateOnly", lookup_field="id")
    app.stack.marketo.state.user_edit(lead_id, {"firstName": "Anna"})
    [call] = calls(app, 1)  # the user's edit only

    assert json.loads(call.body)["values"]["title"] == "VP"  # the values as they are when it runs


def test_the_values_are_those_of_the_run_not_of_the_trigger(campaign: App) -> None:
    app = campaign
    lead_id = seed(app)
    app.marketo_admin.pause_campaigns(True)
    app.stack.marketo.state.user_edit(lead_id, {"title": "A"})
    app.stack.marketo.state.user_edit(lead_id, {"title": "B"})
    app.marketo_admin.pause_campaigns(False)
    both = calls(app, 2)

    assert [json.loads(d.body)["values"]["title"] for d in both] == ["B", "B"]
    for delivery in both:
        assert deliver(delivery)[0] == 202
    assert len({n.dedup_id for n in app.notices()}) == 2  # each call is its own notice


def _request(body: bytes, **headers: str) -> int:
    response = marketo_change(webhook_request(body, {**HEADERS, **headers}, url=URL))
    return int(response.status_code)


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        pytest.param(
            b'{"marketoId": 5}', {"x-mdsync-key": "wrong" * 4}, 401, "x-mdsync-key", id="wrong-secret"
        ),
        pytest.param(b'{"marketoId": 5}', {"x-mdsync-key": ""}, 401, "x-mdsync-key", id="no-secret"),
        pytest.param(b"<xml/>", {"Content-Type": "application/xml"}, 415, "Content-Type", id="xml"),
        pytest.param(b"{not json", {}, 400, "not valid JSON", id="bad-json"),
        pytest.param(b"[1]", {}, 400, "JSON object", id="array"),
        pytest.param(b'{"values": {}}', {}, 400, "marketoId is missing", id="no-id"),
        pytest.param(b'{"marketoId": "abc"}', {}, 400, "whole number", id="id-not-a-number"),
        pytest.param(b'{"marketoId": 0}', {}, 400, "between 1", id="id-zero"),
        pytest.param(
            b'{"marketoId": 5, "values": [1]}', {}, 400, "values must be a JSON object", id="values-list"
        ),
        pytest.param(
            b'{"marketoId": 5, "values": {"title": {"a": 1}}}', {}, 400, "values.title", id="nested"
        ),
        pytest.param(b'{"marketoId": 5, "event": "deleted"}', {}, 400, "event must be one of", id="event"),
        pytest.param(b'{"marketoId": 5, "pad": "' + b"x" * 70_000 + b'"}', {}, 413, "exceeds", id="too-big"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_queues_nothing(
    app: App, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    response = marketo_change(webhook_request(body, {**HEADERS, **headers}, url=URL))

    assert response.status_code == status
    assert says in str(response_json(response)["error"])
    assert app.queued() == []


def test_unmapped_fields_are_left_out_and_a_value_too_long_marks_the_notice_trimmed(app: App) -> None:
    body = {"marketoId": 7, "values": {"title": "x" * 5000, "firstName": "Ana", "notMapped": "y"}}

    assert _request(json.dumps(body).encode()) == 202
    [notice] = app.notices()
    assert notice.trimmed
    assert notice.changes == {"title": FieldChange(new=None), "firstName": FieldChange(new="Ana")}


def test_a_queue_that_cannot_take_the_notice_answers_503_with_retry_after(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(notices: list[Notice]) -> None:
        raise ServiceUnavailableError("queue down", service="queue")

    monkeypatch.setattr(app.queue, "send", refuse)
    response = marketo_change(webhook_request(b'{"marketoId": 5}', HEADERS, url=URL))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_without_its_secret_set_mdsync_answers_misconfigured(
    capture_stack: SimulatorStack, tap: Tap, tmp_path: Path
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MARKETO_WEBHOOK_SECRET", raising=False)
        settings = {
            k: v for k, v in app_settings(capture_stack, tmp_path).items() if k != "MARKETO_WEBHOOK_SECRET"
        }
        for name, value in settings.items():
            env.setenv(name, value)
        reset_container()
        try:
            response = marketo_change(webhook_request(b'{"marketoId": 5}', HEADERS, url=URL))
        finally:
            reset_container()

    assert response.status_code == 503
    assert "MARKETO_WEBHOOK_SECRET" in str(response_json(response)["error"])
