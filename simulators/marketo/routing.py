"""The REST endpoint table: effective method + path template -> handler.

The endpoint key (``"GET /rest/v1/lead/{id}.json"``) names a call in the call counts; the
client counts its calls under the same keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulators.marketo import bulk_extract as extract
from simulators.marketo import bulk_import as imports
from simulators.marketo import rest_activities as activities
from simulators.marketo import rest_custom as custom
from simulators.marketo import rest_leads as leads
from simulators.marketo.calls import RestCall
from simulators.marketo.state import SimState

# A handler answers the envelope's members (a dict), or a whole response (a bulk file).
Handler = Callable[[SimState, RestCall], Any]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    json_body: bool = False
    multipart: bool = False
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


V1 = "/rest/v1"
EXT = f"{V1}/activities/external"
BULK = "/bulk/v1/leads"
EXPORT = f"{BULK}/export/{{exportId}}"
BATCH = f"{BULK}/batch/{{batchId}}"
IMPORT_PATH = f"{BULK}.json"
ROUTES: tuple[Route, ...] = (
    Route("GET", f"{V1}/leads.json", leads.get_leads),
    Route("POST", f"{V1}/leads.json", leads.sync_leads, json_body=True),
    Route("DELETE", f"{V1}/leads.json", leads.delete_leads, json_body=True),
    Route("POST", f"{V1}/leads/delete.json", leads.delete_leads, json_body=True),
    Route("POST", f"{V1}/leads/{{id}}/merge.json", leads.merge_leads, json_body=True),
    Route("GET", f"{V1}/lead/{{id}}.json", leads.get_lead),
    Route("GET", f"{V1}/leads/describe.json", leads.describe),
    Route("GET", f"{V1}/leads/describe2.json", leads.describe2),
    Route("GET", f"{V1}/activities/pagingtoken.json", activities.paging_token),
    Route("GET", f"{V1}/activities/leadchanges.json", activities.lead_changes),
    Route("GET", f"{V1}/activities/deletedleads.json", activities.deleted_leads),
    Route("GET", f"{V1}/activities.json", activities.lead_activities),
    Route("GET", f"{V1}/activities/types.json", activities.activity_types),
    Route("GET", f"{EXT}/types.json", custom.list_types),
    Route("POST", f"{EXT}/type.json", custom.create_type, json_body=True),
    Route("GET", f"{EXT}/type/{{apiName}}/describe.json", custom.describe_type),
    Route("POST", f"{EXT}/type/{{apiName}}/attributes/create.json", custom.create_attributes, json_body=True),
    Route("POST", f"{EXT}/type/{{apiName}}/approve.json", custom.approve_type, json_body=True),
    Route("POST", f"{EXT}.json", custom.add_activities, json_body=True),
    Route("POST", f"{BULK}/export/create.json", extract.create, json_body=True),
    Route("POST", f"{EXPORT}/enqueue.json", extract.enqueue),
    Route("GET", f"{EXPORT}/status.json", extract.status),
    Route("GET", f"{EXPORT}/file.json", extract.file),
    Route("POST", f"{EXPORT}/cancel.json", extract.cancel),
    Route("GET", f"{BULK}/export.json", extract.list_jobs),
    Route("POST", IMPORT_PATH, imports.submit, multipart=True),
    Route("GET", f"{BATCH}.json", imports.status),
    Route("GET", f"{BATCH}/failures.json", imports.failures),
    Route("GET", f"{BATCH}/warnings.json", imports.warnings),
)


@dataclass(frozen=True)
class Resolution:
    route: Route | None
    path_params: dict[str, str]
    path_known: bool  # some route has this path (so a miss is 605, not 610)


def resolve(method: str, path: str) -> Resolution:
    known = False
    for route in ROUTES:
        found = route.pattern.match(path)
        if not found:
            continue
        known = True
        if route.method == method:
            return Resolution(route, found.groupdict(), True)
    return Resolution(None, {}, known)
