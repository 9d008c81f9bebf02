"""MarketoClient: the Lead Database, Activities and custom-activity calls mdsync makes.

Reads and writes are batched at Marketo's 300 records a call; every call goes through one
transport (limiter, token, envelope, bounded retries) and is counted in :attr:`calls`. The bulk
APIs are its :attr:`exports` (Bulk Lead Extract, ``shared/marketo/bulk_extract.py``) and
:attr:`imports` (Bulk Lead Import, ``shared/marketo/bulk_import.py``), on the same transport.
Record-level outcomes (skipped with reasons) come back as results; a response-level error
raises the typed error of ``shared.errors`` carrying Marketo's code.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests

from shared.calls import CallCounter
from shared.errors import UNSENDABLE, ConflictError, ValidationError
from shared.marketo.budget import BudgetedCallLimiter
from shared.marketo.bulk_extract import LeadExportClient
from shared.marketo.bulk_import import LeadImportClient
from shared.marketo.filters import unsendable
from shared.marketo.limiter import IDENTITY_ENDPOINT, CallLimiter
from shared.marketo.models import (
    Activity,
    ActivityPage,
    CustomActivityResult,
    CustomActivityType,
    CustomActivityTypeSpec,
    FieldDescription,
    PushResult,
)
from shared.marketo.tokens import TokenCache
from shared.marketo.transport import Call, Transport
from shared.ports import RateBudget
from shared.redaction import redact

__all__ = ["MarketoClient"]

log = logging.getLogger(__name__)

BATCH = 300
# Keep each write body under Marketo's 1 MB limit (HTTP 413), with room for the envelope.
MAX_BODY_BYTES = 900_000
V1 = "/rest/v1"
EXTERNAL = f"{V1}/activities/external"
IDEMPOTENT_ACTIONS = frozenset({"createOrUpdate", "updateOnly"})
T = TypeVar("T")


class MarketoClient:
    """A client of one Marketo instance, safe to share between threads.

    ``max_calls_per_20s`` and ``max_concurrency`` are this client's share of the instance's
    limits (100 per rolling 20 s and 10 in flight, for all integrations together); the first may
    be a function, asked before each call, when the share moves (the live sync's, during an
    initial sync).
    ``retry_budget_seconds`` bounds the time one call may spend backing off and retrying;
    ``max_rate_wait_seconds``, the time it may wait for the client's share of the rate (None: as
    long as it takes; after it, RateShareSpentError without sending).
    ``budget``: the rate shared with mdsync's other instances (``shared.marketo.budget``), on
    top of this client's own share. ``clock``/``sleep`` exist so tests can drive time."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        max_calls_per_20s: int | Callable[[], int] = 80,
        max_concurrency: int = 8,
        timeout: float = 30.0,
        retry_budget_seconds: float = 10.0,
        max_rate_wait_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        budget: RateBudget | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        for suffix in ("/rest", "/identity"):
            base = base.removesuffix(suffix)
        self.base_url = base
        self.calls = CallCounter(uncounted=[IDENTITY_ENDPOINT])
        session = session or requests.Session()
        self._tokens = TokenCache(
            f"{base}/identity/oauth/token",
            client_id,
            client_secret,
            session=session,
            timeout=timeout,
            counter=self.calls,
            clock=clock,
        )
        self.limiter = (
            CallLimiter(max_calls_per_20s, max_concurrency, clock=clock, sleep=sleep)
            if budget is None
            else BudgetedCallLimiter(budget, max_calls_per_20s, max_concurrency, clock=clock, sleep=sleep)
        )
        self._transport = Transport(
            base,
            tokens=self._tokens,
            session=session,
            limiter=self.limiter,
            counter=self.calls,
            timeout=timeout,
            retry_budget=retry_budget_seconds,
            clock=clock,
            sleep=sleep,
            max_rate_wait=max_rate_wait_seconds,
        )
        # The bulk APIs, through the same transport (counted, limited and retried alike).
        self.exports = LeadExportClient(self._transport, clock=clock, sleep=sleep)
        self.imports = LeadImportClient(self._transport, clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        return f"MarketoClient({self.base_url!r})"

    @property
    def max_calls_per_20s(self) -> int:
        """This client's share of the instance's rate now (it moves when given as a function)."""
        return self.limiter.max_calls

    # --- reading persons ----------------------------------------------------------------------

    def get_leads_by_ids(self, ids: Iterable[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The persons with these ids (missing ones are simply absent), 300 ids a call."""
        return self.get_leads_by_filter("id", [str(int(i)) for i in ids], fields)

    def get_leads_by_filter(
        self, filter_type: str, values: Iterable[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Persons whose ``filter_type`` field equals one of ``values`` (Get Leads by Filter
        Type), 300 values a call, following ``nextPageToken``. A long query is sent as a POST
        with ``_method=GET``. A value the filter cannot carry (``filters.unsendable``: a comma
        would make it two values) raises ValidationError ``mdsync-unsendable`` before anything
        is sent."""
        unique = list(dict.fromkeys(str(v) for v in values if str(v)))
        refused = [f"{redact(v)!r} {why}" for v in unique if (why := unsendable(filter_type, v))]
        if refused:
            raise ValidationError(
                f"cannot filter {filter_type} by " + "; ".join(refused[:5]),
                service="marketo",
                code=UNSENDABLE,
            )
        found: list[dict[str, Any]] = []
        for chunk in _chunks(unique, BATCH):
            params = [
                ("filterType", filter_type),
                ("filterValues", ",".join(chunk)),
                ("fields", ",".join(fields)),
                ("batchSize", str(BATCH)),
            ]
            token: str | None = None
            while True:
                paged = [*params, ("nextPageToken", token)] if token else params
                body = self._transport.request(Call("GET", f"{V1}/leads.json", paged))
                found.extend(body.get("result") or [])
                token = body.get("nextPageToken")
                if not body.get("moreResult") or not token:
                    break
        return found

    def describe_leads(self) -> list[FieldDescription]:
        """Every person field usable over REST (Describe Lead)."""
        body = self._transport.request(Call("GET", f"{V1}/leads/describe.json"))
        described = []
        for raw in body.get("result") or []:
            rest = raw.get("rest")
            if not rest:
                continue
            soap = raw.get("soap") or {}
            described.append(
                FieldDescription(
                    name=str(rest["name"]),
                    display_name=str(raw.get("displayName", "")),
                    data_type=str(raw.get("dataType", "")),
                    length=raw.get("length"),
                    updateable=not rest.get("readOnly", False),
                    soap_name=soap.get("name"),
                    field_id=raw.get("id"),
                )
            )
        return described

    # --- writing persons ----------------------------------------------------------------------

    def push_leads(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        lookup_field: str = "email",
        partition_name: str | None = None,
    ) -> list[PushResult]:
        """Sync Leads, 300 records (and under 1 MB) a call; one result per record, in order."""
        results: list[PushResult] = []
        for chunk in _write_chunks(records):
            body: dict[str, Any] = {"action": action, "lookupField": lookup_field, "input": chunk}
            if partition_name:
                body["partitionName"] = partition_name
            call = Call("POST", f"{V1}/leads.json", json_body=body, idempotent=action in IDEMPOTENT_ACTIONS)
            results.extend(self._record_results(call, len(chunk)))
        return results

    def merge_leads(self, winner: int, losers: Sequence[int]) -> None:
        """Merge Leads: ``losers`` (at most 25) into ``winner``. The winner keeps its values and
        takes a loser's where its own is empty; the losers cease to exist. Not resent blindly:
        a second merge of the same losers fails with 1004."""
        ids = ",".join(str(int(i)) for i in losers)
        call = Call(
            "POST",
            f"{V1}/leads/{int(winner)}/merge.json",
            [("leadIds", ids)],
            json_body={},
            idempotent=False,
            template=f"{V1}/leads/{{id}}/merge.json",
        )
        self._transport.request(call)

    def _record_results(self, call: Call, expected: int) -> list[PushResult]:
        raw = self._transport.request(call).get("result") or []
        results = [PushResult.from_json(r) for r in raw]
        if len(results) != expected:
            log.warning("marketo %s: %d results for %d records", call.endpoint, len(results), expected)
        return results

    # --- activities ---------------------------------------------------------------------------

    def get_paging_token(self, since: datetime) -> str:
        """A token meaning "activities from ``since`` on" (``since`` must be timezone-aware)."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = self._transport.request(
            Call("GET", f"{V1}/activities/pagingtoken.json", [("sinceDatetime", stamp)])
        )
        return str(body["nextPageToken"])

    def get_lead_changes(
        self,
        token: str,
        fields: Sequence[str],
        *,
        batch_size: int = BATCH,
        lead_ids: Sequence[int] | None = None,
    ) -> ActivityPage:
        """New Lead (12) and Change Data Value (13) activities for ``fields``, from ``token``."""
        params = [("nextPageToken", token), ("fields", ",".join(fields)), ("batchSize", str(batch_size))]
        if lead_ids:
            params.append(("leadIds", ",".join(str(i) for i in lead_ids)))
        return self._page(Call("GET", f"{V1}/activities/leadchanges.json", params))

    def get_deleted_leads(self, token: str, *, batch_size: int = BATCH) -> ActivityPage:
        """Delete Lead (37) activities from ``token``."""
        params = [("nextPageToken", token), ("batchSize", str(batch_size))]
        return self._page(Call("GET", f"{V1}/activities/deletedleads.json", params))

    def get_lead_activities(
        self,
        token: str,
        activity_type_ids: Sequence[int],
        lead_ids: Sequence[int] | None = None,
        *,
        batch_size: int = BATCH,
    ) -> ActivityPage:
        """Activities of up to 10 types (custom ones included), optionally for ≤ 30 persons."""
        params = [
            ("nextPageToken", token),
            ("activityTypeIds", ",".join(str(t) for t in activity_type_ids)),
            ("batchSize", str(batch_size)),
        ]
        if lead_ids:
            params.append(("leadIds", ",".join(str(i) for i in lead_ids)))
        return self._page(Call("GET", f"{V1}/activities.json", params))

    def _page(self, call: Call) -> ActivityPage:
        body = self._transport.request(call)
        # An empty page has no "result" member at all.
        activities = tuple(Activity.from_json(a) for a in body.get("result") or [])
        token = body.get("nextPageToken")
        return ActivityPage(activities, str(token) if token else None, bool(body.get("moreResult")))

    # --- custom activities ----------------------------------------------------------------------

    def list_custom_activity_types(self) -> list[CustomActivityType]:
        body = self._transport.request(Call("GET", f"{EXTERNAL}/types.json"))
        return [CustomActivityType.from_json(t) for t in body.get("result") or []]

    def describe_custom_activity_type(self, api_name: str, *, draft: bool = False) -> CustomActivityType:
        params = [("draft", "true")] if draft else []
        call = Call(
            "GET",
            f"{EXTERNAL}/type/{api_name}/describe.json",
            params,
            template=f"{EXTERNAL}/type/{{apiName}}/describe.json",
        )
        body = self._transport.request(call)
        return CustomActivityType.from_json((body.get("result") or [{}])[0])

    def ensure_custom_activity_type(self, spec: CustomActivityTypeSpec) -> int:
        """The id of the approved type ``spec.api_name``, creating the draft, adding missing
        attributes and approving as needed (safe to call again after a partial failure)."""
        current = self._find_type(spec.api_name)
        if current is None:
            current = self._create_type(spec)
        if "draft" in current.status and current.status != "draft":
            current = self.describe_custom_activity_type(spec.api_name, draft=True)
        missing = [a for a in spec.attributes if a[0] not in current.attributes]
        if missing:
            payload = {
                "attributes": [{"apiName": a, "name": n, "dataType": t} for a, n, t in missing],
            }
            self._transport.request(
                Call(
                    "POST",
                    f"{EXTERNAL}/type/{spec.api_name}/attributes/create.json",
                    json_body=payload,
                    idempotent=False,
                    template=f"{EXTERNAL}/type/{{apiName}}/attributes/create.json",
                )
            )
        if missing or current.status != "approved":
            approved = self._transport.request(
                Call(
                    "POST",
                    f"{EXTERNAL}/type/{spec.api_name}/approve.json",
                    json_body={},
                    # Not blindly resent: approving twice fails (no draft left).
                    idempotent=False,
                    template=f"{EXTERNAL}/type/{{apiName}}/approve.json",
                )
            )
            current = CustomActivityType.from_json(approved["result"][0])
            log.info("marketo custom activity type %s approved (id %d)", spec.api_name, current.id)
        return current.id

    def _find_type(self, api_name: str) -> CustomActivityType | None:
        return next((t for t in self.list_custom_activity_types() if t.api_name == api_name), None)

    def _create_type(self, spec: CustomActivityTypeSpec) -> CustomActivityType:
        primary_api, primary_name = spec.primary_attribute
        body = {
            "apiName": spec.api_name,
            "name": spec.name,
            "description": spec.description,
            "triggerName": spec.trigger_name,
            "filterName": spec.filter_name,
            "primaryAttribute": {"apiName": primary_api, "name": primary_name, "dataType": "string"},
        }
        try:
            created = self._transport.request(
                Call("POST", f"{EXTERNAL}/type.json", json_body=body, idempotent=False)
            )
        except ConflictError:
            found = self._find_type(spec.api_name)  # created by a concurrent run meanwhile
            if found is None:
                raise
            return found
        return CustomActivityType.from_json(created["result"][0])

    def add_custom_activities(self, records: Sequence[Mapping[str, Any]]) -> list[CustomActivityResult]:
        """Add Custom Activities (write-once), 300 a call; one result per record, in order.

        Each record: ``leadId``, ``activityDate`` (ISO text or datetime), ``activityTypeId``,
        ``primaryAttributeValue``, ``attributes`` (``[{"apiName", "value"}]``)."""
        results: list[CustomActivityResult] = []
        for chunk in _write_chunks([_activity_json(r) for r in records]):
            call = Call("POST", f"{EXTERNAL}.json", json_body={"input": chunk}, idempotent=False)
            raw = self._transport.request(call).get("result") or []
            results.extend(CustomActivityResult.from_json(r) for r in raw)
        skipped = [r for r in results if r.status != "added"]
        if skipped:
            codes = sorted({reason.code for r in skipped for reason in r.reasons})
            log.warning("marketo: %d custom activities skipped (%s)", len(skipped), ", ".join(codes))
        return results


def _activity_json(record: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(record)
    when = item.get("activityDate")
    if isinstance(when, datetime):
        item["activityDate"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    item.setdefault("attributes", [])
    return item


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _write_chunks(records: Sequence[Mapping[str, Any]]) -> Iterator[list[Mapping[str, Any]]]:
    """Up to BATCH records per chunk, and fewer when their JSON would pass MAX_BODY_BYTES."""
    chunk: list[Mapping[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(json.dumps(record, default=str).encode()) + 1
        if chunk and (len(chunk) == BATCH or size + record_size > MAX_BODY_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk
