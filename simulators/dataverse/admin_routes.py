"""The simulator's admin API under ``/admin`` (no authentication; documented in README.md).

Seeding and reading rows bypass webhooks; calls under ``/admin/as/{user}/...`` are ordinary Web
API calls made as a configured human user, so they validate and fire webhooks exactly like an
API call, with that user as ``InitiatingUserId``.

Request bodies are read strictly (``simulators/admin_body.py``): a value of the wrong JSON type
or an unknown field is a 400 naming the field, and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.admin_body import BadField, Body, query_number, settings
from simulators.dataverse.engine import Caller
from simulators.dataverse.faults import DataverseFault
from simulators.dataverse.limits import FaultRule, ServiceLimits
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.plugins import PluginRule
from simulators.dataverse.representation import AnnotationFilter, represent
from simulators.dataverse.schema import OPTION_TYPES

if TYPE_CHECKING:
    from simulators.dataverse.app import DataverseState

_SEEDABLE_SYSTEM = ("statecode", "statuscode", "createdon", "modifiedon")
_REQUIRED_LEVELS = ("None", "SystemRequired", "ApplicationRequired", "Recommended")


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, *allowed: str) -> Body:
    return Body.parse(await request.body(), allowed)


def _strict(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A bad field of the request is a 400 that says which and what it must be."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except BadField as why:
            return _bad(str(why))

    return endpoint


class AdminApi:
    """One method per admin endpoint; :meth:`routes` lists them."""

    def __init__(self, state: DataverseState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [Route(r.path, _strict(r.endpoint), methods=r.methods) for r in self._routes()]

    def _routes(self) -> list[Route]:
        return [
            Route("/reset", self.reset, methods=["POST"]),
            Route("/rows/{logical}", self.rows, methods=["GET", "POST"]),
            Route("/as/{user}/{path:path}", self.as_user, methods=["GET", "POST", "PATCH", "DELETE"]),
            Route("/columns/{logical}/{column}", self.columns, methods=["PUT"]),
            Route("/plugins", self.plugins, methods=["GET", "POST"]),
            Route("/plugins/{name}", self.plugin, methods=["DELETE"]),
            Route("/limits", self.limits, methods=["GET", "PUT"]),
            Route("/faults", self.faults, methods=["GET", "POST", "DELETE"]),
            Route("/webhooks/jobs", self.jobs, methods=["GET"]),
            Route("/webhooks/drain", self.drain, methods=["POST"]),
            Route("/webhooks/pause", self.pause, methods=["POST"]),
            Route("/calls", self.calls, methods=["GET", "DELETE"]),
            Route("/users", self.users, methods=["GET"]),
            Route("/bulk-support", self.bulk, methods=["PUT"]),
            Route("/bypass", self.bypass, methods=["GET", "PUT"]),
        ]

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})

    async def rows(self, request: Request) -> Response:
        state = self.state
        logical = request.path_params["logical"]
        try:
            table = state.table(logical)
        except KeyError:
            return _bad(f"unknown table '{logical}'", 404)
        if request.method == "POST":
            rows = (await _body(request, "rows")).objects("rows", [])
            try:
                ids = _seed(state, logical, rows)
            except DataverseFault as fault:
                return JSONResponse(fault.envelope(), status_code=fault.status)
            return JSONResponse({"ids": ids})
        wanted = request.query_params.get("id")
        annotations = AnnotationFilter("*")
        with state.store.lock:
            found = [
                represent(table, row, None, annotations, state.engine.name_of)
                for row_id, row in state.store.rows[logical].items()
                if wanted is None or row_id == wanted.lower()
            ]
        return JSONResponse({"value": found})

    async def as_user(self, request: Request) -> Response:
        state = self.state
        try:
            user_id = state.user_id(unquote(request.path_params["user"]))
        except KeyError:
            return _bad(f"unknown user '{request.path_params['user']}'", 404)
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = unquote(raw.decode("latin-1").split("/", 4)[4], encoding="utf-8")
        base = f"{request.url.scheme}://{request.url.netloc}"
        headers = {k.lower(): v for k, v in request.headers.items()}
        headers["prefer"] = ",".join(request.headers.getlist("prefer"))
        query = request.scope.get("query_string", b"").decode("latin-1")
        req = ApiRequest(
            method=request.method,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers=headers,
            body=await request.body(),
            caller=Caller(user_id),
            service_root=f"{base}/api/data/v9.2",
        )
        return _plain(state.api.dispatch(req))

    async def columns(self, request: Request) -> Response:
        logical, name = request.path_params["logical"], request.path_params["column"]
        try:
            column = self.state.table(logical).columns[name]
        except KeyError:
            return _bad(f"unknown column '{logical}.{name}'", 404)
        body = await _body(request, "required_level", "max_length", "options")
        level = body.text_or_none("required_level")
        if level is not None:
            body.text("required_level", choices=_REQUIRED_LEVELS)
        max_length = body.whole_or_none("max_length", minimum=1)
        options = _options(body) if body.data.get("options") is not None else None
        if options is not None and column.type not in OPTION_TYPES:
            return _bad(f"options: only a choice column has options ({logical}.{name} is {column.type})")
        with self.state.store.lock:
            if level is not None:
                column.required = level
            if max_length is not None:
                column.max_length = max_length
            if options is not None:
                # A choice added to the column (customisation): value -> label.
                column.options.update(options)
        return JSONResponse(
            {
                "column": name,
                "required_level": column.required,
                "max_length": column.max_length,
                "options": {str(k): v for k, v in column.options.items()},
            }
        )

    async def plugins(self, request: Request) -> Response:
        engine = self.state.engine
        if request.method == "POST":
            fields = _plugin(await _body(request, *_PLUGIN_FIELDS))
            try:
                rule = PluginRule.from_json(fields)
            except ValueError as exc:
                return _bad(f"invalid plug-in: {exc}")
            with self.state.store.lock:
                engine.plugins[:] = [p for p in engine.plugins if p.name != rule.name]
                engine.plugins.append(rule)
        return JSONResponse({"value": [p.to_json() for p in engine.plugins]})

    async def plugin(self, request: Request) -> Response:
        name = request.path_params["name"]
        engine = self.state.engine
        with self.state.store.lock:
            before = len(engine.plugins)
            engine.plugins[:] = [p for p in engine.plugins if p.name != name]
            removed = before - len(engine.plugins)
        return JSONResponse({"removed": removed})

    async def limits(self, request: Request) -> Response:
        if request.method == "PUT":
            body = await _body(request, *_LIMITS)
            self.state.limiter.configure(**settings(ServiceLimits, body, {n: n for n in _LIMITS}))
        return JSONResponse(self.state.limiter.limits.to_json())

    async def faults(self, request: Request) -> Response:
        sender = self.state.webhooks
        if request.method == "DELETE":
            self.state.faults.clear()
            with sender.cond:
                sender.drop_next = sender.duplicate_next = 0
        elif request.method == "POST":
            body = await _body(request, *_FAULT_FIELDS)
            kind = body.text("kind", choices=_FAULT_KINDS)
            if kind in ("drop_webhooks", "duplicate_webhooks"):
                count = body.whole("count", 1, minimum=1)
                with sender.cond:
                    if kind == "drop_webhooks":
                        sender.drop_next += count
                    else:
                        sender.duplicate_next += count
            else:
                try:
                    rule = FaultRule.from_json(_fault(body))
                except ValueError as exc:
                    return _bad(str(exc))
                self.state.faults.add(rule)
        return JSONResponse(
            {
                "rules": self.state.faults.to_json(),
                "drop_webhooks": sender.drop_next,
                "duplicate_webhooks": sender.duplicate_next,
            }
        )

    async def jobs(self, request: Request) -> Response:
        sender = self.state.webhooks
        with sender.cond:
            value = list(sender.jobs)
        return JSONResponse({"value": value, "pending": sender.pending()})

    async def drain(self, request: Request) -> Response:
        timeout = query_number(request.query_params, "timeout", 10.0)
        drained = await asyncio.to_thread(self.state.webhooks.drain, timeout)
        return JSONResponse({"drained": drained, "pending": self.state.webhooks.pending()})

    async def pause(self, request: Request) -> Response:
        paused = (await _body(request, "paused")).flag("paused", True)
        self.state.webhooks.set_paused(paused)
        return JSONResponse({"paused": self.state.webhooks.paused})

    async def calls(self, request: Request) -> Response:
        with self.state.calls_lock:
            if request.method == "DELETE":
                self.state.calls.clear()
            return JSONResponse(dict(self.state.calls))

    async def users(self, request: Request) -> Response:
        with self.state.store.lock:
            value = [
                {
                    "systemuserid": r["systemuserid"],
                    "fullname": r.get("fullname"),
                    "applicationid": r.get("applicationid"),
                }
                for r in self.state.store.rows["systemuser"].values()
            ]
        return JSONResponse({"value": value})

    async def bypass(self, request: Request) -> Response:
        """``{"user": name or id, "granted": bool}`` gives or takes prvBypassCustomBusinessLogic;
        ``{"limit": n}`` sets BypassBusinessLogicExecutionStepIdsLimit."""
        policy = self.state.bypass
        if request.method == "PUT":
            body = await _body(request, "user", "granted", "limit")
            user, granted = body.text_or_none("user"), body.flag("granted", True)
            if "granted" in body and user is None:
                raise BadField("user", "given with granted: the user's name or id")
            limit = body.whole_or_none("limit", minimum=1)
            if user is not None:
                try:
                    user_id = self.state.user_id(user)
                except KeyError:
                    return _bad(f"unknown user '{user}'", 404)
                policy.grant(user_id, granted)
            if limit is not None:
                policy.limit = limit
        return JSONResponse(policy.to_json())

    async def bulk(self, request: Request) -> Response:
        body = await _body(request, "entity", "supported")
        entity, supported = body.text("entity"), body.flag("supported", True)
        self.state.set_bulk_support(entity, supported)
        return JSONResponse({"bulk_tables": sorted(self.state.bulk_tables)})


def admin_routes(state: DataverseState) -> list[Route]:
    return AdminApi(state).routes()


_LIMITS = tuple(f.name for f in dataclasses.fields(ServiceLimits))
_PLUGIN_FIELDS = ("name", "entity", "kind", "message", "column", "pattern", "messages")
_FAULT_KINDS = ("throttle", "error", "latency", "refuse", "drop_webhooks", "duplicate_webhooks")
_FAULT_FIELDS = ("kind", "count", "status", "retry_after", "seconds", "path", "contains")


def _options(body: Body) -> dict[int, str]:
    """``options``: an object of whole-number value -> label."""
    raw = body.obj("options")
    options: dict[int, str] = {}
    for value, label in raw.items():
        if not value.lstrip("-").isdigit() or not isinstance(label, str):
            raise BadField(f"options.{value}", "a whole-number value (as the key) with a string label", label)
        options[int(value)] = label
    return options


def _plugin(body: Body) -> dict[str, Any]:
    """A plug-in rule's fields, each of its type (``PluginRule.from_json`` checks what they mean)."""
    found: dict[str, Any] = {
        "name": body.text("name"),
        "entity": body.text("entity"),
        "kind": body.text("kind"),
    }
    for name in ("message", "column", "pattern"):
        found[name] = body.text_or_none(name)
    found["messages"] = body.texts("messages", ["Create", "Update"])
    return found


def _fault(body: Body) -> dict[str, Any]:
    """A fault rule's fields, each of its type (``FaultRule.from_json`` checks what they mean)."""
    found: dict[str, Any] = {"kind": body.text("kind"), "count": body.whole_or_none("count", 1, minimum=1)}
    for name in ("status", "retry_after"):
        if name in body:
            found[name] = body.whole(name, minimum=0)
    if "seconds" in body:
        found["seconds"] = body.number("seconds", minimum=0)
    for name in ("path", "contains"):
        found[name] = body.text_or_none(name)
    return found


def _plain(response: ApiResponse) -> Response:
    headers = dict(response.headers)
    media_type = headers.pop("Content-Type", None)
    return Response(response.body, status_code=response.status, headers=headers, media_type=media_type)


def _seed(state: DataverseState, logical: str, rows: list[dict[str, Any]]) -> list[str]:
    """Insert rows as existing data: no webhooks; system columns may be given."""
    engine = state.engine
    table = state.table(logical)
    ids: list[str] = []
    with state.store.transaction() as tx:
        for data in rows:
            body = {k: v for k, v in data.items() if k not in _SEEDABLE_SYSTEM}
            owner = str(data.get("_ownerid_value") or "")
            body.pop("_ownerid_value", None)
            values, submitted = engine.parse_payload(table, body, creating=True)
            row = engine.create(tx, table, values, submitted, Caller(owner or _app_user(state)))
            extra = (
                engine.parse_payload(
                    table, {k: data[k] for k in _SEEDABLE_SYSTEM if k in data}, creating=False
                )[0]
                if any(k in data for k in _SEEDABLE_SYSTEM)
                else {}
            )
            for name in ("createdon", "modifiedon"):
                if name in data:
                    extra[name] = engine.convert(table, table.columns[name], data[name])
            if extra:
                row = {**row, **extra}
                if "statecode" in extra and "statuscode" not in extra:
                    row["statuscode"] = table.columns["statecode"].state_default_status.get(
                        extra["statecode"]
                    )
                tx.replace(logical, row)
            ids.append(row[table.primary_id])
        tx.events.clear()
    return ids


def _app_user(state: DataverseState) -> str:
    with state.store.lock:
        for row in state.store.rows["systemuser"].values():
            if row.get("applicationid") or str(row.get("fullname", "")).startswith("#"):
                return str(row["systemuserid"])
    return state.config.users[0].systemuserid


__all__ = ["AdminApi", "admin_routes"]
