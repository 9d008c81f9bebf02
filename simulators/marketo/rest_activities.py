"""Activity endpoints: paging tokens, Get Lead Changes, Get Deleted Leads, Get Lead
Activities, Get Activity Types. An empty page has no ``result`` member, as Marketo answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from simulators.marketo.activities import (
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    NEW_LEAD,
    STANDARD_TYPES,
    Activity,
    Cursor,
)
from simulators.marketo.calls import RestCall
from simulators.marketo.faults import MarketoFault
from simulators.marketo.state import SimState

Envelope = dict[str, Any]
MAX_LEAD_IDS = 30
MAX_TYPE_IDS = 10


def paging_token(state: SimState, call: RestCall) -> Envelope:
    raw = call.required("sinceDatetime")
    try:
        since = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise MarketoFault("704", "Invalid date format") from None
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return {"nextPageToken": Cursor(0, since.timestamp()).encode()}


def _page(state: SimState, call: RestCall, match: Callable[[Activity], bool]) -> Envelope:
    cursor = Cursor.decode(call.required("nextPageToken"))
    limits = state.gate.limits
    page = state.log.page(
        cursor,
        match,
        batch_size=call.batch_size(limits.max_batch),
        scan_limit=limits.activity_scan_limit,
    )
    answer: Envelope = {"nextPageToken": page.next_cursor.encode(), "moreResult": page.more}
    if page.activities:
        answer["result"] = [a.to_json() for a in page.activities]
    return answer


def _leads_filter(call: RestCall) -> frozenset[int] | None:
    ids = call.int_list("leadIds", MAX_LEAD_IDS)
    return frozenset(ids) if ids else None


def lead_changes(state: SimState, call: RestCall) -> Envelope:
    fields = set(call.values("fields"))
    if not fields:
        raise MarketoFault("701", "fields cannot be blank")
    for name in fields:
        state.catalog.require(name)
    leads = _leads_filter(call)

    def match(a: Activity) -> bool:
        if leads is not None and a.lead_id not in leads:
            return False
        if a.type_id == NEW_LEAD:
            return True
        return a.type_id == CHANGE_DATA_VALUE and any(f["name"] in fields for f in a.fields)

    return _page(state, call, match)


def deleted_leads(state: SimState, call: RestCall) -> Envelope:
    return _page(state, call, lambda a: a.type_id == DELETE_LEAD)


def lead_activities(state: SimState, call: RestCall) -> Envelope:
    types = frozenset(call.int_list("activityTypeIds", MAX_TYPE_IDS))
    if not types:
        raise MarketoFault("701", "activityTypeIds cannot be blank")
    leads = _leads_filter(call)
    return _page(
        state,
        call,
        lambda a: a.type_id in types and (leads is None or a.lead_id in leads),
    )


def activity_types(state: SimState, call: RestCall) -> Envelope:
    result = [dict(t) for t in STANDARD_TYPES]
    for custom in state.custom_types.approved():
        live = custom.live
        assert live is not None
        result.append(
            {
                "id": custom.type_id,
                "apiName": custom.api_name,
                "name": live.name,
                "description": live.description,
                "primaryAttribute": {
                    "name": live.primary_attribute["name"],
                    "dataType": live.primary_attribute["dataType"],
                },
                "attributes": [{"name": a["name"], "dataType": a["dataType"]} for a in live.attributes],
            }
        )
    return {"result": result}
