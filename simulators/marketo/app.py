"""The simulated Marketo instance as an ASGI app: identity, the REST API, the admin API.

Every REST call goes through one pipeline, in the order a real instance decides:
URI/body size (HTTP 414/413; 10 MB for a bulk import) -> access token (600/601/602) -> path
and method (610/605) -> injected faults -> concurrency (615), rate (606), daily quota (607) ->
content type and JSON (612/609; 612/613 for a multipart body) -> the handler (response-level
6xx/7xx/1xxx errors or a result). Every answer is HTTP 200 with the JSON envelope except
413/414 and the bulk files (the file itself, or 404 with a plain-text body).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from simulators.marketo.admin_api import admin_routes
from simulators.marketo.bulk_import import parse_form
from simulators.marketo.calls import RestCall
from simulators.marketo.config import MarketoSimConfig
from simulators.marketo.faults import HttpFault, MarketoFault, fault
from simulators.marketo.routing import IMPORT_PATH, resolve
from simulators.marketo.state import SimState
from simulators.marketo.stats import SeenRequest

MAX_URI = 8 * 1024
MAX_BODY = 1024 * 1024
_BEFORE_ADMISSION = frozenset({"600", "601", "602", "605", "610"})
log = logging.getLogger(__name__)


@dataclass
class MarketoSim:
    app: Starlette
    state: SimState

    def close(self) -> None:
        """Stop the bulk worker and delete the bulk files."""
        self.state.close()


def create_app(config: MarketoSimConfig | None = None) -> MarketoSim:
    state = SimState(config or MarketoSimConfig())

    async def identity(request: Request) -> Response:
        return await _identity(state, request)

    async def rest(request: Request) -> Response:
        return await _rest(state, request)

    app = Starlette(
        routes=[
            Route("/identity/oauth/token", identity, methods=["GET", "POST"]),
            Mount("/admin", routes=admin_routes(state)),
            Route("/{path:path}", rest, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
        ]
    )
    return MarketoSim(app=app, state=state)


def request_id() -> str:
    return f"{secrets.token_hex(2)}#{int(time.time() * 1000):x}"


def envelope_error(code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"requestId": request_id(), "success": False, "errors": [{"code": code, "message": message}]}
    )


# --- identity ------------------------------------------------------------------------------


async def _identity(state: SimState, request: Request) -> Response:
    params = dict(request.query_params)
    if request.method == "POST" and "form" in request.headers.get("content-type", ""):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        params.update({key: values[0] for key, values in form.items()})
    path = request.url.path
    with state.lock:
        seen = SeenRequest(f"{request.method} {path}", request.method, path, False, None, 200)
        state.stats.record(seen)
        if params.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"},
                status_code=400,
            )
        if params.get("client_id") != state.config.client_id:
            return _unauthorized("invalid_client", "No client with requested id")
        if not secrets.compare_digest(params.get("client_secret", ""), state.config.client_secret):
            return _unauthorized("unauthorized", "Bad client credentials")
        token, remaining = state.tokens.issue()
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": remaining,
            "scope": state.config.api_user,
        }
    )


def _unauthorized(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=401)


# --- REST pipeline --------------------------------------------------------------------------


@dataclass
class _Incoming:
    method: str  # effective (a POST with _method=GET is a GET)
    override: bool
    call: RestCall
    raw_body: bytes
    content_type: str


async def _rest(state: SimState, request: Request) -> Response:
    path = request.url.path
    endpoint = f"{request.method} {path}"
    code: str | None = None
    status = 200
    incoming: _Incoming | None = None
    try:
        incoming = await _read(request, _body_limit(state, request.method, path))
        resolution = resolve(incoming.method, path)
        if resolution.route:
            endpoint = resolution.route.key
        incoming.call.path_params = resolution.path_params
        with state.lock:
            state.tokens.check(_bearer(request))
            if resolution.route is None:
                raise fault("605") if resolution.path_known else fault("610")
            state.gate.admit()
            delay = state.gate.latency()
        try:
            if delay:
                await asyncio.sleep(delay)
            if resolution.route.json_body:
                incoming.call.body = _json_body(incoming)
            if resolution.route.multipart:
                incoming.call.form, incoming.call.files = parse_form(incoming.raw_body, incoming.content_type)
            with state.lock:
                refusal = state.gate.content_refusal(_content(incoming))
                if refusal is not None:
                    raise refusal
                result = resolution.route.handler(state, incoming.call)
        finally:
            with state.lock:
                state.gate.release()
        if isinstance(result, Response):
            return result
        return JSONResponse({"requestId": request_id(), "success": True, **result})
    except MarketoFault as why:
        code = why.code
        if code in _BEFORE_ADMISSION:  # the gate counts what it answers or admits itself
            with state.lock:
                state.gate.count(code)
        return envelope_error(why.code, why.message)
    except HttpFault as why:
        status = why.status
        return PlainTextResponse(why.text, status_code=why.status)
    except Exception:
        log.exception("marketo simulator: unhandled error on %s", endpoint)
        code = "611"
        return envelope_error(code, "System error")
    finally:
        with state.lock:
            state.stats.record(
                SeenRequest(
                    endpoint,
                    request.method,
                    path,
                    incoming.override if incoming else False,
                    code,
                    status,
                )
            )


def _body_limit(state: SimState, method: str, path: str) -> int:
    return state.bulk.limits.import_max_bytes if (method, path) == ("POST", IMPORT_PATH) else MAX_BODY


async def _read(request: Request, max_body: int) -> _Incoming:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method == "GET" and len(target.encode()) > MAX_URI:
        raise HttpFault(414, "Request-URI Too Long")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_body:
        raise HttpFault(413, "Request Entity Too Large")
    body = await request.body()
    if len(body) > max_body:
        raise HttpFault(413, "Request Entity Too Large")
    params = parse_qs(request.url.query, keep_blank_values=True)
    content_type = request.headers.get("content-type", "").lower()
    method = request.method
    override = False
    if method == "POST":
        form = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if "GET" in params.get("_method", []) or "GET" in form.get("_method", []):
            method, override = "GET", True
            for key, values in form.items():
                params.setdefault(key, []).extend(values)
    params.pop("_method", None)
    headers = {k.lower(): v for k, v in request.headers.items()}
    return _Incoming(method, override, RestCall(params=params, headers=headers), body, content_type)


def _content(incoming: _Incoming) -> str:
    """What a call carries, as text: its parameters and its body (JSON escapes decoded)."""
    params = " ".join(f"{k}={v}" for k, values in incoming.call.params.items() for v in values)
    body = incoming.call.body
    text = json.dumps(body, ensure_ascii=False) if body is not None else ""
    return f"{params} {text}"


def _bearer(request: Request) -> str | None:
    # The access_token query parameter was removed on 31 Aug 2026: only the header counts.
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _json_body(incoming: _Incoming) -> Any:
    if not incoming.raw_body.strip():
        return None
    if not incoming.content_type.startswith("application/json"):
        raise fault("612")
    try:
        return json.loads(incoming.raw_body)
    except ValueError:
        raise fault("609") from None
