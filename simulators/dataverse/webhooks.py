"""Webhook steps, fired like the platform: RemoteExecutionContext JSON POSTed after the write.

On commit, every event is matched against the enabled ``sdkmessageprocessingstep`` rows (message,
table, ``filteringattributes`` for Update) that its request did not bypass
(:mod:`simulators.dataverse.bypass`); each match becomes a system job that a background
worker delivers to the step's service endpoint with its authentication (WebhookKey ``?code=``,
HttpHeader headers, HttpQueryString parameters). A 502/503/504 answer earns exactly one more
attempt; the outcome is kept as a system job (``asyncoperation``-like record). Payloads over
256 KB lose ``ParentContext``, ``InputParameters`` and the images and carry
``x-ms-dynamics-msg-size-exceeded``.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from shared.http import make_session
from simulators.dataverse.representation import formatted
from simulators.dataverse.schema import LOOKUP_TYPES, OPTION_TYPES, AttrType, Table
from simulators.dataverse.store import Event, Ref, Row, Store

log = logging.getLogger(__name__)

CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
RETRIED_STATUSES = frozenset({502, 503, 504})
_SETTING = re.compile(r'<setting\s+name="([^"]*)"\s+value="([^"]*)"\s*/>')


@dataclass(frozen=True)
class OrgInfo:
    organization_id: str
    organization_name: str
    business_unit_id: str
    host: str


@dataclass
class Delivery:
    job_id: str
    step_id: str
    step_name: str
    message: str
    logical: str
    row_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    size_exceeded: bool
    correlation_id: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


def dotnet_date(value: datetime, *, offset: bool = False) -> str:
    ms = int(value.timestamp() * 1000)
    return f"/Date({ms}+0000)/" if offset else f"/Date({ms})/"


def entity_reference(ref: Ref, name: str | None = None) -> dict[str, Any]:
    return {
        "__type": f"EntityReference:{CONTRACTS}",
        "Id": ref.id,
        "KeyAttributes": [],
        "LogicalName": ref.logical,
        "Name": name,
        "RowVersion": None,
    }


def typed_value(table: Table, name: str, value: Any) -> Any:
    column = table.columns.get(name)
    if value is None or column is None:
        return value
    if isinstance(value, Ref):
        return entity_reference(value)
    if column.type in OPTION_TYPES:
        return {"__type": f"OptionSetValue:{CONTRACTS}", "Value": value}
    if column.type is AttrType.MONEY:
        return {"__type": f"Money:{CONTRACTS}", "Value": value}
    if isinstance(value, datetime):
        return dotnet_date(value)
    return value


def entity_json(
    table: Table,
    row_id: str,
    attributes: Row,
    *,
    typed: bool,
    with_formatted: bool,
    row_version: int | None = None,
    key_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if typed:
        out["__type"] = f"Entity:{CONTRACTS}"
    out["Attributes"] = [{"key": k, "value": typed_value(table, k, v)} for k, v in attributes.items()]
    out["EntityState"] = None
    labels = []
    if with_formatted:
        for name, value in attributes.items():
            column = table.columns.get(name)
            label = formatted(column, value) if column and column.type not in LOOKUP_TYPES else None
            if isinstance(value, datetime):
                label = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")
            if label is not None:
                labels.append({"key": name, "value": label})
    out["FormattedValues"] = labels
    out["Id"] = row_id
    out["KeyAttributes"] = [{"key": k, "value": v} for k, v in (key_attributes or {}).items()]
    out["LogicalName"] = table.logical_name
    out["RelatedEntities"] = []
    out["RowVersion"] = str(row_version) if row_version is not None else None
    return out


@dataclass(frozen=True)
class Step:
    step_id: str
    name: str
    stage: int
    mode: int
    rank: int
    filtering: tuple[str, ...]
    endpoint: Row
    images: tuple[Row, ...]


def matching_steps(store: Store, event: Event) -> list[Step]:
    """The enabled steps registered for this message and table, less those the request bypassed
    (``MSCRM.BypassBusinessLogicExecutionStepIds``: no system job at all) (call under the store
    lock)."""
    rows = store.rows
    steps: list[Step] = []
    for step in rows["sdkmessageprocessingstep"].values():
        if step.get("statecode") != 0 or step.get("sdkmessageid") is None:
            continue
        if step["sdkmessageprocessingstepid"] in event.bypassed:
            continue
        message = rows["sdkmessage"].get(step["sdkmessageid"].id, {})
        if message.get("name") != event.message:
            continue
        filter_ref = step.get("sdkmessagefilterid")
        if filter_ref is not None:
            message_filter = rows["sdkmessagefilter"].get(filter_ref.id, {})
            if message_filter.get("primaryobjecttypecode") != event.logical:
                continue
        handler = step.get("eventhandler")
        endpoint = rows["serviceendpoint"].get(handler.id) if handler else None
        if endpoint is None or endpoint.get("contract") != 8:
            continue
        filtering = tuple(a.strip() for a in (step.get("filteringattributes") or "").split(",") if a.strip())
        if event.message == "Update" and filtering and not set(filtering) & set(event.submitted):
            continue
        images = tuple(
            image
            for image in rows["sdkmessageprocessingstepimage"].values()
            if image.get("sdkmessageprocessingstepid")
            and image["sdkmessageprocessingstepid"].id == step["sdkmessageprocessingstepid"]
        )
        steps.append(
            Step(
                step["sdkmessageprocessingstepid"],
                step.get("name") or "",
                int(step.get("stage") or 40),
                int(step.get("mode") or 0),
                int(step.get("rank") or 1),
                filtering,
                endpoint,
                images,
            )
        )
    return sorted(steps, key=lambda s: (s.rank, s.name))


def _image(table: Table, row: Row, image: Row) -> dict[str, Any]:
    wanted = [a.strip() for a in (image.get("attributes") or "").split(",") if a.strip()]
    names = wanted or list(row)
    attrs = {n: row[n] for n in names if row.get(n) is not None}
    attrs[table.primary_id] = row[table.primary_id]
    return entity_json(table, row[table.primary_id], attrs, typed=False, with_formatted=True)


def _images(table: Table, event: Event, step: Step) -> tuple[list[Any], list[Any]]:
    pre: list[Any] = []
    post: list[Any] = []
    for image in step.images:
        kind = image.get("imagetype")
        alias = image.get("entityalias") or "Image"
        if kind in (0, 2) and event.pre is not None and event.message != "Create":
            pre.append({"key": alias, "value": _image(table, event.pre, image)})
        if kind in (1, 2) and event.post is not None and event.message != "Delete":
            post.append({"key": alias, "value": _image(table, event.post, image)})
    if step.mode == 1 and event.post is not None:
        # Async steps also carry the primary name of the row (seen in every platform sample).
        primary = {
            table.primary_name: event.post.get(table.primary_name),
            table.primary_id: event.row_id,
        }
        value = entity_json(table, event.row_id, primary, typed=False, with_formatted=False)
        post.insert(0, {"key": "AsynchronousStepPrimaryName", "value": value})
    return pre, post


def build_context(
    table: Table, event: Event, step: Step, org: OrgInfo, *, operation_id: str
) -> dict[str, Any]:
    """The RemoteExecutionContext, keys in DataContract (alphabetical) order."""
    if event.message in ("Delete", "Merge"):
        target: Any = {
            "__type": f"EntityReference:{CONTRACTS}",
            "Id": event.row_id,
            "KeyAttributes": [],
            "LogicalName": table.logical_name,
            "Name": None,
            "RowVersion": None,
        }
    else:
        version = event.post.get("versionnumber") if event.post else None
        target = entity_json(
            table,
            event.row_id,
            event.target,
            typed=True,
            with_formatted=False,
            row_version=version,
            key_attributes=event.key_attributes,
        )
    inputs = [{"key": "Target", "value": target}]
    if event.message == "Merge":
        content = event.inputs.get("UpdateContent") or {}
        inputs += [
            {"key": "SubordinateId", "value": event.inputs.get("SubordinateId")},
            {
                "key": "UpdateContent",
                "value": entity_json(table, event.row_id, content, typed=True, with_formatted=False),
            },
            {"key": "PerformParentingChecks", "value": bool(event.inputs.get("PerformParentingChecks"))},
        ]
    outputs = [{"key": "id", "value": event.row_id}] if event.message == "Create" else []
    created = datetime.now(UTC)
    pre, post = _images(table, event, step)
    base = {
        "BusinessUnitId": org.business_unit_id,
        "CorrelationId": event.correlation_id,
        "Depth": 1,
        "InitiatingUserAgent": "",
        "InitiatingUserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "InitiatingUserId": event.user_id,
        "InputParameters": inputs,
        "IsExecutingOffline": False,
        "IsInTransaction": step.mode == 0,
        "IsOfflinePlayback": False,
        "IsolationMode": 1,
        "MessageName": event.message,
        "Mode": step.mode,
        "OperationCreatedOn": dotnet_date(created, offset=True),
        "OperationId": operation_id,
        "OrganizationId": org.organization_id,
        "OrganizationName": org.organization_name,
        "OutputParameters": outputs,
        "OwningExtension": {
            "Id": step.step_id,
            "KeyAttributes": [],
            "LogicalName": "sdkmessageprocessingstep",
            "Name": step.name or None,
            "RowVersion": None,
        },
        "ParentContext": None,
        "PostEntityImages": post,
        "PreEntityImages": pre,
        "PrimaryEntityId": event.row_id,
        "PrimaryEntityName": table.logical_name,
        "RequestId": event.request_id,
        "SecondaryEntityName": "none",
        "SharedVariables": [
            {"key": "IsAutoTransact", "value": True},
            {"key": "AcceptLang", "value": ""},
        ],
        "Stage": step.stage,
        "UserAzureActiveDirectoryObjectId": "00000000-0000-0000-0000-000000000000",
        "UserId": event.user_id,
    }
    if event.message != "Delete":
        parent = dict(base)
        parent.update(
            {
                "InputParameters": inputs,
                "IsInTransaction": True,
                "Mode": 0,
                "OperationCreatedOn": dotnet_date(created),
                "OutputParameters": [],
                "OwningExtension": {
                    "Id": "63cdbb1b-ea3e-db11-86a7-000a3a5473e8",
                    "KeyAttributes": [],
                    "LogicalName": "sdkmessageprocessingstep",
                    "Name": "ObjectModel Implementation",
                    "RowVersion": None,
                },
                "PostEntityImages": [],
                "PreEntityImages": [],
                "Stage": 30,
            }
        )
        base["ParentContext"] = parent
    return base


def serialize(context: dict[str, Any]) -> bytes:
    # DataContractJsonSerializer escapes "/" as "\/"; "/" only ever occurs inside strings.
    text = json.dumps(context, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode("utf-8")


def trim(context: dict[str, Any]) -> dict[str, Any]:
    dropped = ("ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages")
    return {k: v for k, v in context.items() if k not in dropped}


def endpoint_auth(endpoint: Row) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) the service endpoint's authtype asks for."""
    value = endpoint.get("authvalue") or ""
    authtype = endpoint.get("authtype")
    settings = {html.unescape(k): html.unescape(v) for k, v in _SETTING.findall(value)}
    if authtype == 4:
        return {}, {"code": value}
    if authtype == 5:
        return settings, {}
    if authtype == 6:
        return {}, settings
    return {}, {}


def with_query(url: str, params: dict[str, str]) -> str:
    if not params:
        return url
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}{urlencode(params)}"


class WebhookSender:
    """Builds deliveries on commit and sends them from one background thread."""

    def __init__(
        self,
        store: Store,
        org: OrgInfo,
        *,
        ca_file: Path | None,
        timeout: float,
        size_limit: int,
    ) -> None:
        self.store = store
        self.org = org
        self.timeout = timeout
        self.size_limit = size_limit
        self.session: requests.Session = make_session(extra_ca_file=ca_file, pool_size=4)
        self.cond = threading.Condition()
        self.queue: deque[Delivery] = deque()
        self.busy = False
        self.jobs: list[dict[str, Any]] = []
        self.drop_next = 0
        self.duplicate_next = 0
        self.paused = False
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- producing (called under the store lock, on commit) -------------------------------

    def on_events(self, events: list[Event]) -> None:
        deliveries = []
        for event in events:
            table = self.store.tables[event.logical]
            for step in matching_steps(self.store, event):
                deliveries.append(self._delivery(table, event, step))
        if deliveries:
            with self.cond:
                self.queue.extend(deliveries)
                self.cond.notify_all()
            self._ensure_worker()

    def _delivery(self, table: Table, event: Event, step: Step) -> Delivery:
        job_id = str(uuid.uuid4())
        context = build_context(table, event, step, self.org, operation_id=job_id)
        body = serialize(context)
        exceeded = len(body) > self.size_limit
        if exceeded:
            body = serialize(trim(context))
        headers, params = endpoint_auth(step.endpoint)
        headers = {
            **headers,
            "Content-Type": "application/json; charset=utf-8",
            "x-request-id": event.request_id,
            "x-ms-dynamics-organization": self.org.host,
            "x-ms-dynamics-entity-name": table.logical_name,
            "x-ms-dynamics-request-name": event.message,
            "x-ms-correlation-request-id": event.correlation_id,
        }
        if exceeded:
            headers["x-ms-dynamics-msg-size-exceeded"] = "true"
        return Delivery(
            job_id,
            step.step_id,
            step.name,
            event.message,
            table.logical_name,
            event.row_id,
            with_query(str(step.endpoint.get("url") or ""), params),
            headers,
            body,
            exceeded,
            event.correlation_id,
        )

    # --- consuming ------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        with self.cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dataverse-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self.cond:
                while (not self.queue or self.paused) and not self._closed:
                    self.cond.wait()
                if self._closed:
                    return
                delivery = self.queue.popleft()
                self.busy = True
                drop = self.drop_next > 0
                self.drop_next -= 1 if drop else 0
                duplicate = self.duplicate_next > 0
                self.duplicate_next -= 1 if duplicate else 0
            try:
                job = self._deliver(delivery, drop=drop, duplicate=duplicate)
            except Exception as exc:  # the worker must survive any receiver behaviour
                job = self._job(delivery, 31, [], f"{type(exc).__name__}: {exc}")
            with self.cond:
                self.jobs.append(job)
                self.busy = False
                self.cond.notify_all()

    def _deliver(self, delivery: Delivery, *, drop: bool, duplicate: bool) -> dict[str, Any]:
        if drop:
            job = self._job(delivery, 31, [], "Delivery dropped by fault injection.")
            job["dropped"] = True
            return job
        statuses: list[int] = []
        error = ""
        for _ in range(2 if duplicate else 1):
            status, error = self._post(delivery)
            statuses.append(status)
            if status in RETRIED_STATUSES:
                status, error = self._post(delivery)
                statuses.append(status)
        ok = 200 <= statuses[-1] < 300
        job = self._job(delivery, 30 if ok else 31, statuses, "" if ok else error)
        job["duplicated"] = duplicate
        return job

    def _post(self, delivery: Delivery) -> tuple[int, str]:
        try:
            response = self.session.post(
                delivery.url, data=delivery.body, headers=delivery.headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return 0, f"The webhook call failed: {type(exc).__name__}."
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return (
            response.status_code,
            f"The plug-in execution failed because the HTTP status code {response.status_code} "
            "was returned by the webhook endpoint.",
        )

    def _job(self, delivery: Delivery, statuscode: int, statuses: list[int], message: str) -> dict[str, Any]:
        return {
            "asyncoperationid": delivery.job_id,
            "name": delivery.step_name,
            "owningextensionid": delivery.step_id,
            "messagename": delivery.message,
            "primaryentitytype": delivery.logical,
            "regardingobjectid": delivery.row_id,
            "correlationid": delivery.correlation_id,
            "statecode": 3,
            "statuscode": statuscode,
            "http_statuses": statuses,
            "attempts": len(statuses),
            "message": message,
            "friendlymessage": message,
            "size_exceeded": delivery.size_exceeded,
            "bytes": len(delivery.body),
            "dropped": False,
            "duplicated": False,
            "createdon": delivery.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "completedon": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    # --- control --------------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Wait until every queued delivery is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue or self.busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.paused:
                    return False
                self.cond.wait(remaining)
        return True

    def pending(self) -> int:
        with self.cond:
            return len(self.queue) + (1 if self.busy else 0)

    def set_paused(self, paused: bool) -> None:
        with self.cond:
            self.paused = paused
            self.cond.notify_all()

    def reset(self) -> None:
        with self.cond:
            self.queue.clear()
            self.jobs.clear()
            self.drop_next = 0
            self.duplicate_next = 0
            self.paused = False
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self._closed = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.session.close()
