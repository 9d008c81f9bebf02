"""The admin API under ``/admin`` (no auth; local use only). Documented in simulators/README.md.

It does what a test or a demo needs and the REST API cannot: seed persons, act as a Marketo
user (edits recorded with a user source), read a person's Activity Log, set limits, inject
faults, read call counts, define and fire webhooks.

Request bodies are read strictly (``simulators/admin_body.py``): a value of the wrong JSON type
or an unknown field is a 400 naming the field, and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.admin_body import Body, query_number, settings
from simulators.marketo.campaigns import CampaignDefinitionError
from simulators.marketo.config import BulkLimits, Limits
from simulators.marketo.faults import MarketoFault
from simulators.marketo.firing import UnknownTarget, fire
from simulators.marketo.state import SimState
from simulators.marketo.webhooks import WebhookDefinitionError

Endpoint = Callable[[Request], Awaitable[Response]]
_LIMIT_KEYS = {
    "rateLimit": "rate_limit",
    "rateWindowSeconds": "rate_window_seconds",
    "concurrencyLimit": "concurrency_limit",
    "dailyQuota": "daily_quota",
    "maxBatch": "max_batch",
    "maxFilterMatches": "max_filter_matches",
    "activityScanLimit": "activity_scan_limit",
}
_BULK_KEYS = {
    "maxProcessing": "max_processing",
    "maxQueued": "max_queued",
    "exportDailyQuotaBytes": "export_daily_quota_bytes",
    "importMaxBytes": "import_max_bytes",
    "maxDateRangeDays": "max_date_range_days",
    "fileRetentionDays": "file_retention_days",
    "statusRetentionDays": "status_retention_days",
    "unsupportedFilters": "unsupported_filters",
    "extractRowsPerSecond": "extract_rows_per_second",
    "importRowsPerSecond": "import_rows_per_second",
    "startDelaySeconds": "start_delay_seconds",
}


def _error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if code:
        body["code"] = code
    return JSONResponse(body, status_code=status)


async def _body(request: Request, *allowed: str) -> Body:
    """The request's JSON object (a bad field raises ``BadField``, a ValueError: a 400)."""
    return Body.parse(await request.body(), allowed)


async def _any_body(request: Request) -> dict[str, Any]:
    """An object whose fields its parser checks (a webhook's, a campaign's definition)."""
    return dict(Body.parse(await request.body()).data)


def _guarded(handler: Callable[[Request], Awaitable[Any]]) -> Endpoint:
    """Map bad input to 400 and unknown ids to 404; a dict result becomes a JSON 200."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except MarketoFault as why:
            return _error(400, why.message, why.code)
        except (ValueError, WebhookDefinitionError, CampaignDefinitionError, TypeError) as why:
            return _error(400, str(why))
        except (KeyError, UnknownTarget) as why:
            return _error(404, f"not found: {why}")
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint


def _limits_json(limits: dict[str, Any]) -> dict[str, Any]:
    back = {v: k for k, v in _LIMIT_KEYS.items()}
    return {back[k]: v for k, v in limits.items() if k in back}


class _AdminApi:
    def __init__(self, state: SimState) -> None:
        self.state = state

    async def reset(self, request: Request) -> dict[str, Any]:
        self.state.reset()
        return {}

    async def seed(self, request: Request) -> dict[str, Any]:
        records = (await _body(request, "persons")).objects("persons")
        return {"ids": self.state.seed(records)}

    async def persons(self, request: Request) -> dict[str, Any]:
        """Every person; ``?fields=id,email`` keeps only those (a million persons in full are
        gigabytes of JSON)."""
        persons = self.state.all_persons()
        wanted = [f for f in request.query_params.get("fields", "").split(",") if f]
        if wanted:
            persons = [{f: p.get(f) for f in wanted} for p in persons]
        return {"persons": persons}

    async def person(self, request: Request) -> dict[str, Any]:
        lead_id = int(request.path_params["lead_id"])
        found = self.state.person(lead_id)
        if found is None:
            raise KeyError(lead_id)
        return {"person": found}

    async def activities(self, request: Request) -> dict[str, Any]:
        raw = request.query_params.get("typeIds")
        types = [int(t) for t in raw.split(",")] if raw else None
        return {"activities": self.state.activities(int(request.path_params["lead_id"]), types)}

    async def user_create(self, request: Request) -> dict[str, Any]:
        return {"id": self.state.user_create((await _body(request, "fields")).obj("fields", {}))}

    async def user_edit(self, request: Request) -> dict[str, Any]:
        lead_id = int(request.path_params["lead_id"])
        fields = (await _body(request, "fields")).obj("fields", {})
        return {"changed": self.state.user_edit(lead_id, fields)}

    async def user_delete(self, request: Request) -> dict[str, Any]:
        lead_id = int(request.path_params["lead_id"])
        if not self.state.user_delete(lead_id):
            raise KeyError(lead_id)
        return {}

    async def user_merge(self, request: Request) -> dict[str, Any]:
        losers = (await _body(request, "losers")).wholes("losers")
        if not losers:
            raise ValueError("losers: must be a non-empty list of person ids")
        winner = int(request.path_params["lead_id"])
        return {"taken": self.state.user_merge(winner, losers)}

    async def partitions(self, request: Request) -> dict[str, Any]:
        if request.url.path.endswith("/move"):
            body = await _body(request, "ids", "partition")
            ids, partition = body.wholes("ids", []), body.whole("partition", minimum=1)
            self.state.move_to_partition(ids, partition)
            return {}
        reach = (await _body(request, "partitions")).wholes_or_none("partitions")
        self.state.set_api_partitions(reach)
        return {"partitions": reach}

    async def field_block(self, request: Request) -> dict[str, Any]:
        name = request.path_params["name"]
        if request.method == "PUT":
            sources = (await _body(request, "sources")).texts("sources")
            self.state.block_field_updates(name, sources)
        elif request.method == "DELETE":
            self.state.block_field_updates(name, ())
        return {"blocked": self.state.blocked_fields().get(name, [])}

    async def limits(self, request: Request) -> dict[str, Any]:
        if request.method == "PUT":
            body = await _body(request, *_LIMIT_KEYS)
            return _limits_json(self.state.set_limits(**settings(Limits, body, _LIMIT_KEYS)))
        with self.state.lock:
            return _limits_json(asdict(self.state.gate.limits))

    async def faults(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            return self.state.faults()
        if request.method == "DELETE":
            self.state.clear_faults()
            return {}
        body = await _body(request, "refuse", "code", "count", "latencyMs")
        if "refuse" in body:
            text, code = body.text("refuse"), _code(body, "1003")
            self.state.refuse_content(text, code, body.whole_or_none("count", minimum=1))
            return {}
        count = body.whole("count", 1, minimum=1)
        if "latencyMs" in body:
            self.state.inject_latency(body.number("latencyMs", minimum=0) / 1000, count)
        elif "code" in body:
            self.state.inject_fault(_code(body), count)
        else:
            raise ValueError("give 'code' (e.g. \"606\"), 'latencyMs' or 'refuse' (text), and 'count'")
        return {}

    async def expire_tokens(self, request: Request) -> dict[str, Any]:
        return {"expired": self.state.expire_tokens()}

    async def quota(self, request: Request) -> dict[str, Any]:
        body = await _body(request, "dailyQuota", "used")
        daily, used = body.whole_or_none("dailyQuota", minimum=0), body.whole_or_none("used", minimum=0)
        self.state.set_quota(daily=daily, used=used)
        return {}

    async def calls(self, request: Request) -> dict[str, Any]:
        if request.method == "DELETE":
            self.state.reset_calls()
            return {}
        return self.state.calls()

    async def bulk(self, request: Request) -> dict[str, Any]:
        """Bulk jobs and their settings; PUT changes settings (camelCase), ``paused`` (jobs
        start but make no progress), ``exportUsedBytes`` (today's export quota spent) and
        ``cutDownloads`` (the next file downloads break after so many bytes each)."""
        bulk = self.state.bulk
        if request.method == "PUT":
            body = await _body(request, *_BULK_KEYS, "paused", "exportUsedBytes", "cutDownloads")
            changes = settings(BulkLimits, body, _BULK_KEYS)
            paused = body.flag("paused") if "paused" in body else None
            used = body.whole_or_none("exportUsedBytes", minimum=0)
            cuts = body.wholes("cutDownloads", [])
            with self.state.lock:
                bulk.configure(**changes)
                if paused is not None:
                    bulk.pause(paused)
                if used is not None:
                    bulk.set_export_used(used)
                bulk.cut_downloads.extend(cuts)
        with self.state.lock:
            limits = {k: getattr(bulk.limits, v) for k, v in _BULK_KEYS.items()}
            limits["unsupportedFilters"] = sorted(limits["unsupportedFilters"])
            return {
                **limits,
                "paused": bulk.paused,
                "exportUsedBytes": bulk.export_used,
                "exports": [j.to_json() for j in bulk.export_jobs.values()],
                "imports": [j.to_json() for j in bulk.import_jobs.values()],
            }

    async def webhooks(self, request: Request) -> dict[str, Any]:
        if request.method == "POST":
            return self.state.define_webhook(await _any_body(request)).to_json()
        with self.state.lock:
            return {"webhooks": [w.to_json() for w in self.state.webhooks.values()]}

    async def campaigns(self, request: Request) -> dict[str, Any]:
        """``POST`` defines a trigger campaign (same name replaces); ``PUT`` ``{"paused": bool}``
        holds or releases the queued runs; ``GET`` lists them with the runs still queued."""
        runner = self.state.campaigns
        if request.method == "POST":
            return self.state.define_campaign(await _any_body(request)).to_json()
        if request.method == "PUT":
            runner.pause((await _body(request, "paused")).flag("paused"))
        return {
            "campaigns": [c.to_json() for c in list(runner.campaigns.values())],
            "pending": runner.pending(),
            "runs": runner.runs,
            "paused": not runner.paused.is_set(),
        }

    async def campaigns_idle(self, request: Request) -> dict[str, Any]:
        """Wait (at most ``timeout`` seconds) until no campaign run is queued."""
        timeout = query_number(request.query_params, "timeout", 10.0)
        idle = await asyncio.to_thread(self.state.campaigns.wait_idle, timeout)
        return {"idle": idle, "pending": self.state.campaigns.pending()}

    async def fire_webhook(self, request: Request) -> dict[str, Any]:
        lead_id = (await _body(request, "leadId")).whole("leadId", minimum=1)
        outcome = await fire(self.state, request.path_params["name"], lead_id)
        return outcome.to_json()


def _code(body: Body, default: str | None = None) -> str:
    """A Marketo error code: a string of digits, as the REST API gives them ("606")."""
    code = body.text("code") if default is None else body.text("code", default)
    if not code.isdigit():
        raise ValueError(
            f'code: must be a Marketo error code as a string of digits (e.g. "606"), not "{code}"'
        )
    return code


def admin_routes(state: SimState) -> list[Route]:
    api = _AdminApi(state)
    table: list[tuple[str, Callable[[Request], Awaitable[Any]], list[str]]] = [
        ("/reset", api.reset, ["POST"]),
        ("/persons", api.persons, ["GET"]),
        ("/persons", api.seed, ["POST"]),
        ("/persons/{lead_id:int}", api.person, ["GET"]),
        ("/persons/{lead_id:int}/activities", api.activities, ["GET"]),
        ("/ui/persons", api.user_create, ["POST"]),
        ("/ui/persons/{lead_id:int}", api.user_edit, ["PATCH"]),
        ("/ui/persons/{lead_id:int}", api.user_delete, ["DELETE"]),
        ("/ui/persons/{lead_id:int}/merge", api.user_merge, ["POST"]),
        ("/fields/{name}/block", api.field_block, ["GET", "PUT", "DELETE"]),
        ("/partitions/move", api.partitions, ["POST"]),
        ("/api-partitions", api.partitions, ["PUT"]),
        ("/limits", api.limits, ["GET", "PUT"]),
        ("/faults", api.faults, ["GET", "POST", "DELETE"]),
        ("/tokens/expire", api.expire_tokens, ["POST"]),
        ("/quota", api.quota, ["PUT"]),
        ("/calls", api.calls, ["GET", "DELETE"]),
        ("/bulk", api.bulk, ["GET", "PUT"]),
        ("/webhooks", api.webhooks, ["GET", "POST"]),
        ("/webhooks/{name}/fire", api.fire_webhook, ["POST"]),
        ("/campaigns", api.campaigns, ["GET", "POST", "PUT"]),
        ("/campaigns/idle", api.campaigns_idle, ["POST"]),
    ]
    return [Route(path, _guarded(handler), methods=methods) for path, handler, methods in table]
