"""The HTTP front of the local host: routes, methods, keys, and the request/response mapping.

A request goes through the same steps as in the Functions host: find the function whose route
template matches ``/{routePrefix}/...`` (404 if none), check the method (405 with ``Allow``;
note the real host answers 404 there, azure-functions-host#10098), check the key for the
function's auth level (401), build a ``func.HttpRequest``, run the function on the worker pool
and turn what it returns into the response with the library's own ``http`` output converter.
A function that raises, or returns something the converter refuses, gives a bare 500.

The body is bounded as the host bounds it (210 MB): a declared Content-Length over the limit is
refused at once, and a body sent without one (chunked) is read piece by piece and refused as
soon as it passes the limit, never held whole first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from azure.functions.http import HttpResponseConverter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mdsync.devhost.discovery import HTTP_METHODS, FunctionSpec, HttpTrigger
from mdsync.devhost.invoke import invoke
from mdsync.devhost.keys import AuthLevel, KeyRing, presented_key
from mdsync.devhost.routes import RouteTemplate
from mdsync.devhost.signin import LocalSignIn, strip_principal
from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

# The host's request limits (web.config): body 210 MB, query string 4096, URL 8192 characters.
MAX_BODY_BYTES = 210_000_000
MAX_QUERY_CHARS = 4096
MAX_URL_CHARS = 8192
HTTP_REASON = "This function was programmatically called via the host APIs."

# name -> None; raises LookupError (unknown function) or ValueError (cannot be run that way).
RunFunction = Callable[[str], None]


@dataclass(frozen=True)
class HttpRoute:
    spec: FunctionSpec
    trigger: HttpTrigger
    template: RouteTemplate


def build_routes(specs: Sequence[FunctionSpec], route_prefix: str) -> list[HttpRoute]:
    """The HTTP functions' routes, most specific first."""
    routes = []
    for spec in specs:
        if not isinstance(spec.trigger, HttpTrigger):
            continue
        template = RouteTemplate(spec.trigger.route)
        if not route_prefix and template.template.lower().split("/")[0] == "admin":
            raise ConfigurationError(
                f"function {spec.name}: route '{spec.trigger.route}' conflicts with the built-in admin routes"
            )
        routes.append(HttpRoute(spec, spec.trigger, template))
    return sorted(routes, key=lambda r: (r.template.precedence, r.template.template.lower()))


def _joined(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Repeated names become one comma-joined value, as ASP.NET's StringValues print."""
    merged: dict[str, list[str]] = {}
    for name, value in pairs:
        merged.setdefault(name, []).append(value)
    return {name: ",".join(values) for name, values in merged.items()}


class HttpFront:
    """Builds the Starlette app that serves the HTTP functions and the admin routes."""

    def __init__(
        self,
        routes: Sequence[HttpRoute],
        *,
        route_prefix: str,
        keys: KeyRing,
        executor: Executor,
        run_function: RunFunction,
        on_invoked: Callable[[], None] = lambda: None,
        sign_in: LocalSignIn | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._sign_in = sign_in
        self._max_body = max_body_bytes
        self._routes = list(routes)
        self._prefix = route_prefix.strip("/")
        self._keys = keys
        self._executor = executor
        self._run_function = run_function
        self._on_invoked = on_invoked

    def app(self) -> Starlette:
        sign_in = self._sign_in.routes() if self._sign_in is not None else []
        return Starlette(
            routes=[
                Route("/admin/functions/{name}", self._admin_run, methods=["POST"]),
                Route("/admin/host/status", self._admin_status, methods=["GET"]),
                *sign_in,
                Route("/{path:path}", self._dispatch, methods=list(HTTP_METHODS)),
            ]
        )

    # --- admin -------------------------------------------------------------------------------

    def _admin_allowed(self, request: Request) -> bool:
        key = presented_key(request.headers, request.query_params)
        return self._keys.allows(AuthLevel.ADMIN, None, key)

    async def _admin_run(self, request: Request) -> Response:
        """``POST /admin/functions/{name}``: run a non-HTTP function now (answers 202)."""
        if not self._admin_allowed(request):
            return Response(status_code=401)
        try:
            self._run_function(request.path_params["name"])
        except LookupError:
            return Response(status_code=404)
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return Response(status_code=202)

    async def _admin_status(self, request: Request) -> Response:
        if not self._admin_allowed(request):
            return Response(status_code=401)
        return JSONResponse({"state": "Running", "host": "mdsync devhost"})

    # --- functions ---------------------------------------------------------------------------

    def _relative_path(self, raw_path: str) -> str | None:
        """The path after ``/{routePrefix}``, or None when the request is outside it."""
        if not self._prefix:
            return raw_path
        head = "/" + self._prefix
        if raw_path.lower() == head.lower():
            return "/"
        if raw_path.lower().startswith(head.lower() + "/"):
            return raw_path[len(head) :]
        return None

    def _select(self, path: str, method: str) -> tuple[HttpRoute, dict[str, str]] | set[str] | None:
        """The route for ``path`` and ``method``; the allowed methods if only the method is
        wrong; None if no route matches the path."""
        allowed: set[str] = set()
        for route in self._routes:
            params = route.template.match(path)
            if params is None:
                continue
            if method in route.trigger.methods:
                return route, params
            allowed.update(route.trigger.methods)
        return allowed or None

    async def _dispatch(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        query = request.scope.get("query_string", b"").decode("latin-1")
        if len(query) > MAX_QUERY_CHARS or len(raw_path) + len(query) > MAX_URL_CHARS:
            return Response(status_code=414)
        if self._sign_in is not None:
            refused = self._sign_in.gate(request, request.url.path)
            if refused is not None:
                return refused
        relative = self._relative_path(raw_path)
        if relative is None:
            return _root_page(raw_path)
        selected = self._select(relative, request.method.upper())
        if selected is None:
            return Response(status_code=404)
        if isinstance(selected, set):
            return Response(status_code=405, headers={"Allow": ", ".join(sorted(selected))})
        route, route_params = selected
        params = _joined(parse_qsl(query, keep_blank_values=True))
        # As App Service does: a caller never chooses who it is; the sign-in says so, if any.
        headers = strip_principal(_joined(list(request.headers.items())))
        if self._sign_in is not None:
            headers.update(self._sign_in.principal_headers(request))
        if not self._keys.allows(route.trigger.auth_level, route.spec.name, presented_key(headers, params)):
            return Response(status_code=401)
        length = request.headers.get("content-length") or "0"
        if not length.isdigit():
            return Response(status_code=400)
        if int(length) > self._max_body:
            return Response(status_code=413)
        body = await self._bounded_body(request)
        if body is None:
            return Response(status_code=413, headers={"Connection": "close"})
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=params,
            route_params=route_params,
            body=body,
        )
        return await self._invoke(route.spec, http_request)

    async def _bounded_body(self, request: Request) -> bytes | None:
        """The body, or None as soon as it passes the limit (the rest is not read)."""
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                return None
        return bytes(body)

    async def _invoke(self, spec: FunctionSpec, http_request: func.HttpRequest) -> Response:
        call = functools.partial(invoke, spec, http_request, reason=HTTP_REASON)
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, call)
            return to_response(result)
        except Exception:  # the function failed (already logged) or returned an unusable value
            return PlainTextResponse("Internal Server Error", status_code=500)
        finally:
            self._on_invoked()


def _root_page(raw_path: str) -> Response:
    if raw_path in ("", "/"):
        return PlainTextResponse("mdsync devhost: your Functions app is up and running.")
    return Response(status_code=404)


def to_response(result: Any) -> Response:
    """Map a function's return value through the library's ``http`` output converter."""
    try:
        datum = HttpResponseConverter.encode(result, expected_type=None)
    except NotImplementedError:
        log.error("the HTTP function returned %s, not an HttpResponse or str", type(result).__name__)
        raise
    if datum.type == "string":
        return PlainTextResponse(datum.value)
    value: dict[str, Any] = datum.value
    headers = {name: header.value for name, header in value["headers"].items()}
    response = Response(
        content=value["body"].value, status_code=int(value["status_code"].value), headers=headers
    )
    for cookie in value.get("cookies") or []:
        for morsel in cookie.values():
            response.raw_headers.append((b"set-cookie", morsel.OutputString().encode("latin-1")))
    return response
