"""Helpers for the flow-step tests: call the function (through the local host or directly), and
take a snapshot of everything the flow step could change, to prove a refusal changed nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import pytest
import requests

from functions.flow_step import sync_person_to_microsoft
from mdsync.harness import HOST_KEY, LocalSystem
from shared.flow_step import SyncPersonToMicrosoft
from simulators.stack import FLOW_STEP_SECRET

KEY_HEADERS = {"x-functions-key": HOST_KEY, "x-mdsync-key": FLOW_STEP_SECRET}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def flow_url(system: LocalSystem) -> str:
    assert system.host is not None
    return system.host.function_url("sync_person_to_microsoft")


def post(
    system: LocalSystem,
    body: bytes | str | dict[str, Any],
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> Answer:
    """POST to the function served by the local host, as Marketo would."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = dict(KEY_HEADERS if headers is None else headers)
    if content_type is not None:
        sent["Content-Type"] = content_type
    response = system.session.post(flow_url(system), data=data, headers=sent, timeout=60)
    return Answer(response.status_code, _json(response), {k.lower(): v for k, v in response.headers.items()})


def call(
    body: bytes | dict[str, Any],
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Answer:
    """Invoke the registered function directly with an azure.functions request."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = func.HttpRequest(
        method="POST",
        url="https://localhost/api/marketo/sync-person",
        headers={"Content-Type": content_type, **(KEY_HEADERS if headers is None else headers)},
        params={},
        route_params={},
        body=data,
    )
    response = sync_person_to_microsoft(request)
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Answer(response.status_code, json.loads(response.get_body() or b"{}"), headers)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def new_person(system: LocalSystem, **fields: Any) -> int:
    """A person created by a Marketo user (not pushed to Dynamics: only the flow step does that)."""
    defaults = {"firstName": "Ana", "lastName": "Lopez", "company": "Fabrikam"}
    return system.marketo_admin.user_create({**defaults, **fields})


def leads(system: LocalSystem) -> list[dict[str, Any]]:
    return system.dataverse_admin.rows("lead")


def leads_of(system: LocalSystem, marketo_id: int) -> list[dict[str, Any]]:
    return [r for r in leads(system) if r.get("mdsync_marketoid") == str(marketo_id)]


def linked(system: LocalSystem, marketo_id: int) -> tuple[str, str] | None:
    """The person's link in the state store: (entity, Dynamics id)."""
    link = system.deps.state.get_links_by_marketo([marketo_id]).get(marketo_id)
    return (link.entity, link.dynamics_id) if link else None


def failures_logged(system: LocalSystem, marketo_id: int) -> list[dict[str, Any]]:
    """The person's "Microsoft Sync Failed" activities, as {attribute apiName: value}."""
    found = []
    for activity in system.marketo_admin.activities(marketo_id):
        attributes = {a.get("apiName"): a.get("value") for a in activity.get("attributes", [])}
        if "errorCode" in attributes:
            found.append(attributes | {"entity": activity.get("primaryAttributeValue")})
    return found


def snapshot(system: LocalSystem) -> dict[str, Any]:
    """Everything a flow step may change: Dynamics rows, Marketo persons, links and shadows."""
    persons = system.marketo_admin.persons()
    ids = [int(p["id"]) for p in persons]
    state = system.deps.state
    return {
        "leads": leads(system),
        "contacts": system.dataverse_admin.rows("contact"),
        "persons": persons,
        "activities": {i: len(system.marketo_admin.activities(i)) for i in ids},
        "links": state.get_links_by_marketo(ids),
        "shadows": state.get_shadows(ids),
    }


@pytest.fixture
def flow(system: LocalSystem) -> SyncPersonToMicrosoft:
    """The flow step the function runs, with its own clients (their call counters included)."""
    return system.deps.flow_step
