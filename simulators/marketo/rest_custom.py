"""Custom activity endpoints: type metadata (draft, attributes, approve, describe, list) and
Add Custom Activities, whose records land on the person's Activity Log."""

from __future__ import annotations

from typing import Any

from simulators.marketo.calls import RestCall
from simulators.marketo.custom_activities import parse_record
from simulators.marketo.faults import MarketoFault
from simulators.marketo.state import SimState

Envelope = dict[str, Any]


def _body(call: RestCall) -> dict[str, Any]:
    if not isinstance(call.body, dict):
        raise MarketoFault("701", "request body cannot be blank")
    return call.body


def list_types(state: SimState, call: RestCall) -> Envelope:
    return {"result": state.custom_types.listing()}


def create_type(state: SimState, call: RestCall) -> Envelope:
    return {"result": [state.custom_types.create(_body(call))]}


def create_attributes(state: SimState, call: RestCall) -> Envelope:
    api_name = call.path_params["apiName"]
    return {"result": [state.custom_types.add_attributes(api_name, _body(call).get("attributes"))]}


def approve_type(state: SimState, call: RestCall) -> Envelope:
    return {"result": [state.custom_types.approve(call.path_params["apiName"])]}


def describe_type(state: SimState, call: RestCall) -> Envelope:
    draft = (call.first("draft") or "").lower() == "true"
    return {"result": [state.custom_types.describe(call.path_params["apiName"], draft=draft)]}


def add_activities(state: SimState, call: RestCall) -> Envelope:
    items = call.input_list(state.gate.limits.max_batch)
    return {"result": [_add_one(state, item) for item in items]}


def _add_one(state: SimState, item: object) -> Envelope:
    try:
        record = parse_record(item, state.custom_types)
        if state.persons.get(record.lead_id) is None:
            raise MarketoFault("1004", "Lead not found")
    except MarketoFault as why:
        # Marketo puts a skipped custom activity's reasons under "errors", not "reasons".
        return {"status": "skipped", "errors": [{"code": why.code, "message": why.message}]}
    added = state.log.append(
        record.lead_id,
        record.type_id,
        record.at,
        primary_attribute_value=record.primary_attribute_value,
        attributes=record.attributes,
    )
    return {"id": added.activity_id, "marketoGUID": added.guid, "status": "added"}
