"""The Call Webhook flow step: a webhook defined in the simulator calls a small receiver run by
the test; the request, the response mappings and the Call Webhook activity are checked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.marketo.admin import MarketoAdminError
from simulators.server import ServerThread
from simulators.tls import TlsFiles
from tests.marketo.conftest import Marketo


@dataclass
class Receiver:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    answer: tuple[int, Any] = (200, {"ok": True})
    delay: float = 0.0


@pytest.fixture
def receiver(tls: TlsFiles) -> Iterator[Receiver]:
    state = Receiver(url="")

    async def hook(request: Request) -> Response:
        state.seen.append(
            {
                "method": request.method,
                "query": str(request.url.query),
                "headers": dict(request.headers),
                "body": (await request.body()).decode(),
            }
        )
        if state.delay:
            time.sleep(state.delay)  # blocks this receiver only; the simulator waits on it
        status, body = state.answer
        return JSONResponse(body, status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["GET", "POST", "PUT"])])
    with ServerThread(app, tls=tls, name="receiver") as server:
        state.url = f"{server.url}/hook"
        yield state


JSON_TEMPLATE = (
    '{"marketoId": {{lead.Id}}, "email": {{lead.Email Address}}, '
    '"first": {{lead.First Name:default=edit me}}, "unsub": {{lead.Unsubscribed}}, '
    '"company": {{lead.Company Name}}}'
)


def test_json_template_header_mapping_and_activity(marketo: Marketo, receiver: Receiver) -> None:
    (lead_id,) = marketo.admin.seed_persons(
        [{"email": "ana@contoso.com", "company": 'Jack & "Jill"', "unsubscribed": False}]
    )
    receiver.answer = (200, {"result": {"leads": [{"id": "00aa-11bb"}]}, "kind": "Lead"})
    marketo.admin.define_webhook(
        "Sync Person to Microsoft",
        receiver.url + "?id={{lead.Id}}",
        template=JSON_TEMPLATE,
        encoding="json",
        headers={"x-mdsync-key": "k-123", "Content-Type": "application/json"},
        response_mappings={"result.leads[0].id": "MSFTLeadId", "kind": "MSFTType"},
    )
    outcome = marketo.admin.fire_webhook("Sync Person to Microsoft", lead_id)
    assert outcome["status"] == 200
    assert outcome["errorType"] is None
    assert sorted(outcome["mappedFields"]) == ["msftLeadId", "msftType"]
    assert outcome["elapsedMs"] >= 0
    (call,) = receiver.seen
    assert call["method"] == "POST"
    assert call["query"] == f"id={lead_id}"
    assert call["headers"]["x-mdsync-key"] == "k-123"
    assert json.loads(call["body"]) == {
        "marketoId": lead_id,
        "email": "ana@contoso.com",
        "first": "edit me",
        "unsub": False,
        "company": 'Jack & "Jill"',
    }
    person = marketo.admin.person(lead_id)
    assert (person["msftLeadId"], person["msftType"]) == ("00aa-11bb", "Lead")
    log = marketo.admin.activities(lead_id)
    assert [a["activityTypeId"] for a in log] == [13, 13, 110]
    webhook = log[-1]
    assert webhook["primaryAttributeValue"] == "Sync Person to Microsoft"
    assert json.loads({a["name"]: a["value"] for a in webhook["attributes"]}["Response"])["kind"] == "Lead"


def test_form_url_encoding(marketo: Marketo, receiver: Receiver) -> None:
    (lead_id,) = marketo.admin.seed_persons(
        [{"email": "bo@x.com", "company": "Jack & Jill", "firstName": "Bo"}]
    )
    marketo.admin.define_webhook(
        "form",
        receiver.url,
        template="id={{lead.Id}}&company={{lead.Company Name}}&name={{lead.First Name}}",
        encoding="form-url",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    marketo.admin.fire_webhook("form", lead_id)
    form = parse_qs(receiver.seen[0]["body"])
    assert form == {"id": [str(lead_id)], "company": ["Jack & Jill"], "name": ["Bo"]}


def test_non_2xx_applies_no_mapping_but_records_the_call(marketo: Marketo, receiver: Receiver) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "c@x.com"}])
    receiver.answer = (503, {"kind": "Lead"})
    marketo.admin.define_webhook("h", receiver.url, template="{}", response_mappings={"kind": "MSFTType"})
    outcome = marketo.admin.fire_webhook("h", lead_id)
    assert (outcome["status"], outcome["errorType"], outcome["mappedFields"]) == (
        503,
        "Service Unavailable",
        [],
    )
    assert marketo.admin.person(lead_id)["msftType"] is None
    assert [a["activityTypeId"] for a in marketo.admin.activities(lead_id)] == [110]


def test_mapping_of_a_value_that_does_not_fit_is_skipped(marketo: Marketo, receiver: Receiver) -> None:
    (lead_id,) = marketo.admin.seed_persons([{"email": "d@x.com"}])
    receiver.answer = (200, {"deleted": "not a boolean", "type": "Contact"})
    marketo.admin.define_webhook(
        "h", receiver.url, template="{}", response_mappings={"deleted": "MSFTIsDeleted", "type": "MSFTType"}
    )
    assert marketo.admin.fire_webhook("h", lead_id)["mappedFields"] == ["msftType"]


def test_timeout_is_recorded(start_marketo: Callable[..., Marketo], receiver: Receiver) -> None:
    m = start_marketo(webhook_timeout_seconds=0.3)
    (lead_id,) = m.admin.seed_persons([{"email": "e@x.com"}])
    receiver.delay = 1.0
    m.admin.define_webhook("slow", receiver.url, template="{}")
    outcome = m.admin.fire_webhook("slow", lead_id)
    assert (outcome["status"], outcome["errorType"]) == (None, "Timeout")
    assert [a["activityTypeId"] for a in m.admin.activities(lead_id)] == [110]


def test_webhook_definition_and_target_errors(marketo: Marketo, receiver: Receiver) -> None:
    with pytest.raises(MarketoAdminError, match="400"):
        marketo.admin.define_webhook("bad", "ftp://x", template="{}")
    with pytest.raises(MarketoAdminError, match="400"):
        marketo.admin.define_webhook("bad", receiver.url, response_mappings={"x": "NotAField"})
    marketo.admin.define_webhook("ok", receiver.url)
    with pytest.raises(MarketoAdminError, match="404"):
        marketo.admin.fire_webhook("ok", 424242)
    with pytest.raises(MarketoAdminError, match="404"):
        marketo.admin.fire_webhook("missing", 1)


def test_concurrent_fires_each_record_an_activity(marketo: Marketo, receiver: Receiver) -> None:
    ids = marketo.admin.seed_persons([{"email": f"{i}@x.com"} for i in range(4)])
    marketo.admin.define_webhook("h", receiver.url, template='{"id": {{lead.Id}}}')
    threads = [threading.Thread(target=marketo.admin.fire_webhook, args=("h", i)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(json.loads(c["body"])["id"] for c in receiver.seen) == ids
    assert all(len(marketo.admin.activities(i, [110])) == 1 for i in ids)
