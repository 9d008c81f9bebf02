"""Lead Database endpoints: Get Leads by Filter Type, Get Lead by Id, Sync Leads, Delete
Leads, Merge Leads, Describe Lead and Describe Lead2."""

from __future__ import annotations

from typing import Any

from simulators.marketo.activities import Cursor
from simulators.marketo.calls import RestCall
from simulators.marketo.faults import MarketoFault
from simulators.marketo.fields import DEFAULT_READ_FIELDS, FieldDef, coerce
from simulators.marketo.persons import API
from simulators.marketo.state import SimState

ACTIONS = frozenset({"createOnly", "updateOnly", "createOrUpdate", "createDuplicate"})
MAX_MERGE_LOSERS = 25
Envelope = dict[str, Any]


def _read_fields(state: SimState, call: RestCall) -> list[str]:
    names = call.values("fields") or list(DEFAULT_READ_FIELDS)
    for name in names:
        state.catalog.require(name)
    return names


def _searchable(state: SimState, name: str) -> FieldDef:
    field = state.catalog.require(name)
    if not field.searchable:
        raise MarketoFault("1011", f"Field '{name}' not supported")
    return field


def get_leads(state: SimState, call: RestCall) -> Envelope:
    limits = state.gate.limits
    field = _searchable(state, call.required("filterType"))
    raw_values = call.values("filterValues")
    if not raw_values:
        raise MarketoFault("701", "filterValues cannot be blank")
    if len(raw_values) > limits.max_batch:
        raise MarketoFault("1003", f"Too many filterValues, maximum {limits.max_batch}")
    values = [coerce(field, v) for v in raw_values]
    fields = _read_fields(state, call)
    size = call.batch_size(limits.max_batch)
    token = call.first("nextPageToken")
    offset = Cursor.decode(token).position if token else 0
    matches = [p for p in state.persons.find(field, values) if state.visible(p)]
    if len(matches) > limits.max_filter_matches:
        raise MarketoFault("1003", "Too many results match the filter")
    page = matches[offset : offset + size]
    more = offset + size < len(matches)
    answer: Envelope = {
        "result": [state.persons.render(p, fields) for p in page],
        "moreResult": more,
    }
    if more:
        answer["nextPageToken"] = Cursor(offset + size, 0.0).encode()
    return answer


def get_lead(state: SimState, call: RestCall) -> Envelope:
    try:
        lead_id = int(call.path_params["id"])
    except ValueError:
        raise MarketoFault("1003", "Invalid lead id") from None
    fields = _read_fields(state, call)
    person = state.persons.get(lead_id)
    seen = person is not None and state.visible(person)
    return {"result": [state.persons.render(person, fields)] if person and seen else []}


def sync_leads(state: SimState, call: RestCall) -> Envelope:
    items = call.input_list(state.gate.limits.max_batch)
    body = call.body
    action = body.get("action") or "createOrUpdate"
    if action not in ACTIONS:
        raise MarketoFault("1003", f"Invalid action '{action}'")
    lookup = _searchable(state, body.get("lookupField") or "email")
    return {"result": [_sync_one(state, item, action, lookup) for item in items]}


def _sync_one(state: SimState, item: object, action: str, lookup: FieldDef) -> Envelope:
    try:
        lead_id, status = _apply(state, item, action, lookup)
    except MarketoFault as why:
        return {"status": "skipped", "reasons": [{"code": why.code, "message": why.message}]}
    return {"id": lead_id, "status": status}


def _apply(state: SimState, item: object, action: str, lookup: FieldDef) -> tuple[int, str]:
    persons = state.persons
    if not isinstance(item, dict):
        raise MarketoFault("1003", "Invalid data")
    if action == "createOnly" and "id" in item:
        raise MarketoFault("1003", "Invalid data: 'id' cannot be used with createOnly")
    values = persons.validate(item, skip=frozenset({"id"}) if lookup.name == "id" else frozenset())
    key = coerce(lookup, item.get(lookup.name))
    if action == "createDuplicate" or (action == "createOnly" and key is None):
        return persons.create(values, API), "created"
    if key is None:
        raise MarketoFault("1002", f"Missing value for the required parameter '{lookup.name}'")
    matches = persons.find(lookup, [key])
    if action == "createOnly":
        if matches:
            raise MarketoFault("1005", "Lead already exists")
        return persons.create(values, API), "created"
    if len(matches) > 1:
        raise MarketoFault("1007", "Multiple leads match the lookup criteria")
    if matches and not state.visible(matches[0]):
        raise MarketoFault("1008", f"Access denied to partition '{matches[0].get('leadPartitionId')}'")
    if not matches:
        if action == "updateOnly" or lookup.name == "id":
            raise MarketoFault("1004", "Lead not found")
        return persons.create(values, API), "created"
    lead_id = int(str(matches[0]["id"]))
    persons.update(lead_id, values, API)
    return lead_id, "updated"


def delete_leads(state: SimState, call: RestCall) -> Envelope:
    maximum = state.gate.limits.max_batch
    if isinstance(call.body, dict) and call.body.get("input"):
        ids = []
        for item in call.input_list(maximum):
            try:
                ids.append(int(item["id"]))
            except (TypeError, KeyError, ValueError):
                raise MarketoFault("1003", "Invalid data: each input needs an integer 'id'") from None
    else:
        ids = call.int_list("id", maximum)
        if not ids:
            raise MarketoFault("701", "input cannot be blank")
    results = []
    for lead_id in ids:
        if state.persons.delete(lead_id):
            results.append({"id": lead_id, "status": "deleted"})
        else:
            results.append(
                {
                    "id": lead_id,
                    "status": "skipped",
                    "reasons": [{"code": "1004", "message": "Lead not found"}],
                }
            )
    return {"result": results}


def merge_leads(state: SimState, call: RestCall) -> Envelope:
    """``POST /rest/v1/leads/{id}/merge.json?leadId=`` or ``leadIds=``: the path names the
    winner. The answer has no ``result``. More than 25 losers is 1080; an unknown id is 1004."""
    try:
        winner = int(call.path_params["id"])
    except ValueError:
        raise MarketoFault("1003", "Invalid lead id") from None
    losers = call.int_list("leadIds", 10_000) or call.int_list("leadId", 1)
    if not losers:
        raise MarketoFault("701", "leadId cannot be blank")
    if len(losers) > MAX_MERGE_LOSERS:
        raise MarketoFault("1080", f"Number of losing leads exceeds {MAX_MERGE_LOSERS}")
    losers = [i for i in dict.fromkeys(losers) if i != winner]
    for lead_id in (winner, *losers):
        if state.persons.get(lead_id) is None:
            raise MarketoFault("1004", f"Lead '{lead_id}' not found")
    state.persons.merge(winner, losers)
    return {}


def describe(state: SimState, call: RestCall) -> Envelope:
    result = []
    for f in state.catalog.fields:
        entry: dict[str, Any] = {"id": f.field_id, "displayName": f.display_name, "dataType": f.data_type}
        if f.length is not None:
            entry["length"] = f.length
        entry["rest"] = {"name": f.name, "readOnly": f.read_only}
        entry["soap"] = {"name": f.soap_name, "readOnly": f.read_only}
        result.append(entry)
    return {"result": result}


def describe2(state: SimState, call: RestCall) -> Envelope:
    fields = []
    for f in state.catalog.fields:
        entry: dict[str, Any] = {"name": f.name, "displayName": f.display_name, "dataType": f.data_type}
        if f.length is not None:
            entry["length"] = f.length
        entry.update(updateable=not f.read_only, crmManaged=False)
        fields.append(entry)
    searchable = [[f.name] for f in state.catalog.fields if f.searchable]
    return {"result": [{"name": "API Lead", "searchableFields": searchable, "fields": fields}]}
