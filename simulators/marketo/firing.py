"""Running a Call Webhook flow step for one person, the way a trigger campaign does.

One HTTP call (30 s timeout by default, no retry), a Call Webhook activity (110) on the
person, and the response mappings applied only when the receiver answered 2xx.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import requests

from shared.http import make_session
from simulators.marketo.activities import CALL_WEBHOOK
from simulators.marketo.faults import MarketoFault
from simulators.marketo.fields import coerce
from simulators.marketo.persons import webhook_origin
from simulators.marketo.webhooks import RenderedRequest, Webhook, extract, render_request

if TYPE_CHECKING:
    from simulators.marketo.state import SimState

RESPONSE_ATTRIBUTE_LIMIT = 2_000


@dataclass(frozen=True)
class Outcome:
    status: int | None
    body: str
    elapsed_ms: float
    error_type: str | None
    mapped: tuple[str, ...] = ()
    activity_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "body": self.body,
            "elapsedMs": round(self.elapsed_ms, 1),
            "errorType": self.error_type,
            "mappedFields": list(self.mapped),
            "activityId": self.activity_id,
        }


class UnknownTarget(LookupError):
    """No such webhook or person."""


async def fire(state: SimState, name: str, lead_id: int) -> Outcome:
    return await asyncio.to_thread(fire_now, state, name, lead_id)


def fire_now(state: SimState, name: str, lead_id: int) -> Outcome:
    """The flow step, on the calling thread (a trigger campaign's runner)."""
    with state.lock:
        hook = state.webhooks.get(name)
        person = state.persons.get(lead_id)
        if hook is None:
            raise UnknownTarget(f"no webhook named '{name}'")
        if person is None:
            raise UnknownTarget(f"no person {lead_id}")
        request = render_request(hook, dict(person), state.catalog)
    outcome = _send(request, state)
    with state.lock:
        mapped: tuple[str, ...] = ()
        if outcome.status is not None and 200 <= outcome.status < 300:
            mapped = _apply_mappings(state, hook, lead_id, outcome.body)
        activity = state.log.append(
            lead_id,
            CALL_WEBHOOK,
            state.clock(),
            primary_attribute_value_id=hook.webhook_id,
            primary_attribute_value=hook.name,
            attributes=(
                {"name": "Error Type", "value": outcome.error_type},
                {"name": "Response", "value": outcome.body[:RESPONSE_ATTRIBUTE_LIMIT]},
            ),
        )
    return Outcome(
        outcome.status, outcome.body, outcome.elapsed_ms, outcome.error_type, mapped, activity.activity_id
    )


def _send(request: RenderedRequest, state: SimState) -> Outcome:
    session = make_session(extra_ca_file=state.config.extra_ca_file)
    session.headers["User-Agent"] = "Marketo-Webhook-Simulator"
    started = time.perf_counter()
    try:
        response = session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body,
            timeout=state.config.webhook_timeout_seconds,
            allow_redirects=False,
        )
    except requests.Timeout:
        return Outcome(None, "", _ms(started), "Timeout")
    except requests.RequestException as exc:
        return Outcome(None, "", _ms(started), f"Connection error: {type(exc).__name__}")
    finally:
        session.close()
    error = None if 200 <= response.status_code < 300 else _reason(response.status_code)
    return Outcome(response.status_code, response.text, _ms(started), error)


def _apply_mappings(state: SimState, hook: Webhook, lead_id: int, body: str) -> tuple[str, ...]:
    if state.persons.get(lead_id) is None:
        return ()  # deleted while the call was out
    try:
        document = json.loads(body)
    except ValueError:
        return ()
    values: dict[str, Any] = {}
    for mapping in hook.mappings:
        found, value = extract(document, mapping.path)
        field = state.catalog.by_soap(mapping.field)
        if not found or field is None or field.read_only:
            continue
        try:
            values[field.name] = coerce(field, value)
        except MarketoFault:
            continue  # a value that does not fit the field's type is not written
    if not values:
        return ()
    return tuple(state.persons.update(lead_id, values, webhook_origin(hook.name)))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
