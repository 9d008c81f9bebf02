"""The operator console, served by the function app itself (docs/operations.md).

``/api/console`` (the status page), ``/api/console/status.json`` (its JSON twin),
``/api/console/errors`` (``errors.json``, ``errors.csv``), ``/api/console/person/{id}``
(``?format=json``), and ``POST /api/console/actions/{replay|resync|pause|resume}`` (a replay
with ``discard=1`` removes the chosen given-up items instead of replaying them).

Anonymous at the Functions level: App Service authentication (Entra ID) stands in front and the
function checks the signed-in user and the operator role itself (``shared.console.auth``), so no
key ever travels in a URL. Answers: 401 not signed in (or App Service authentication off), 403
signed in without the role or a POST without its form token, 400 bad input (the message says
what), 404 unknown page, 405 wrong method, 503 misconfigured. POSTs from a browser answer 303
back to the page with the outcome; with ``Accept: application/json`` they answer JSON.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, unquote, urlsplit

import azure.functions as func

from functions._faults import misconfigured
from functions._http import error, json_response
from shared.bootstrap import Container, container
from shared.console import page
from shared.console.actions import MAX_ITEMS, ActionResult
from shared.console.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    Principal,
    Refusal,
    authorize,
    check_csrf,
    cookies,
    csrf_cookie,
    csrf_token,
)
from shared.console.listing import Listing, list_errors
from shared.console.status import as_json
from shared.errors import BadRequestError, ConfigurationError, MdsyncError
from shared.ports import ErrorQuery, SyncError

log = logging.getLogger(__name__)
bp = func.Blueprint()

FLASH_COOKIE = "mdsync_flash"
MAX_FORM_BYTES = 1_000_000
PAGE_SIZE = 100
LOG_LIMIT = 200
# No script runs on the pages; styles are inline; forms post only to the console itself.
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


@bp.function_name("console")
@bp.route(route="console/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _handle(req)
    except ConfigurationError as exc:
        return misconfigured("console", exc)


class _Request:
    """What every page needs: the dependencies, the user, the CSRF token, the flash message."""

    def __init__(self, req: func.HttpRequest, deps: Container, who: Principal) -> None:
        self.req = req
        self.deps = deps
        self.who = who
        self.csrf, self.new_csrf = csrf_token(req.headers)
        raw = cookies(req.headers).get(FLASH_COOKIE, "")
        self.flash_ok = not raw.startswith("!")
        self.flash = unquote(raw.lstrip("!"))[:500]

    def html(self, body: str, status: int = 200) -> func.HttpResponse:
        response = func.HttpResponse(body, status_code=status, mimetype="text/html", charset="utf-8")
        self._cookies(response)
        return response

    def data(self, body: dict[str, object], status: int = 200) -> func.HttpResponse:
        response = json_response(status, body)
        self._cookies(response)
        return response

    def _cookies(self, response: func.HttpResponse) -> None:
        secure = urlsplit(self.req.url).scheme == "https"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = CSP
        if self.new_csrf:
            response.headers.add("Set-Cookie", csrf_cookie(self.csrf, secure=secure))
        if self.flash:
            response.headers.add(
                "Set-Cookie", f"{FLASH_COOKIE}=; Path=/api/console; Max-Age=0; HttpOnly; SameSite=Strict"
            )


def _handle(req: func.HttpRequest) -> func.HttpResponse:
    deps = container()
    deps.app_started()
    settings = deps.settings
    who = authorize(req.headers, platform_auth=settings.platform_auth_enabled, role=settings.console_role)
    if isinstance(who, Refusal):
        return _refused(req, who)
    request = _Request(req, deps, who)
    path = (req.route_params.get("path") or "").strip("/")
    try:
        if req.method.upper() == "POST":
            if not path.startswith("actions/"):
                return error(405, "only the actions take POST")
            return _act(request, path.removeprefix("actions/"))
        route = GET_ROUTES.get(path)
        if route is None and path.startswith("person/"):
            return _person(request, unquote(path.removeprefix("person/")))
        if route is None:
            return error(404, f"no console page {path!r}")
        return route(request)
    except BadRequestError as exc:
        return error(exc.status, str(exc))
    except ValueError as exc:
        return error(400, str(exc))


def _refused(req: func.HttpRequest, refusal: Refusal) -> func.HttpResponse:
    log.info("console: refused %s %s: %s", req.method, urlsplit(req.url).path, refusal.message)
    if _wants_json(req):
        return error(refusal.status, refusal.message)
    return func.HttpResponse(
        page.refusal_page(refusal.status, refusal.message),
        status_code=refusal.status,
        mimetype="text/html",
        charset="utf-8",
    )


def _wants_json(req: func.HttpRequest) -> bool:
    path = urlsplit(req.url).path
    return path.endswith(".json") or "application/json" in (req.headers.get("accept") or "")


# --- pages ---------------------------------------------------------------------------------------


def _status_page(request: _Request) -> func.HttpResponse:
    status = request.deps.status_reader.read()
    audit = request.deps.operations.read_audit(limit=10)
    body = page.status_page(
        status, audit, request.who, request.csrf, flash=request.flash, flash_ok=request.flash_ok
    )
    return request.html(body)


def _status_json(request: _Request) -> func.HttpResponse:
    return request.data(as_json(request.deps.status_reader.read()))


def _query(req: func.HttpRequest) -> ErrorQuery:
    def value(name: str) -> str | None:
        text = (req.params.get(name) or "").strip()
        if len(text) > 200:
            raise BadRequestError(f"filter {name} is longer than 200 characters")
        return text or None

    return ErrorQuery(
        kind=value("kind"),
        reason=value("reason"),
        entity=value("entity"),
        person=value("person"),
        field=value("field"),
        text=value("q"),
    )


def _limit(req: func.HttpRequest, default: int, most: int) -> int:
    raw = req.params.get("limit") or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadRequestError(f"limit must be a whole number from 1 to {most}")
    return int(raw)


def _listing(request: _Request, query: ErrorQuery) -> Listing:
    return list_errors(
        request.deps.operations,
        request.deps.dead_letter_errors,
        query,
        cursor=request.req.params.get("cursor") or None,
        limit=_limit(request.req, PAGE_SIZE, 1000),
    )


def _errors_page(request: _Request) -> func.HttpResponse:
    query = _query(request.req)
    listing = _listing(request, query)
    body = page.errors_page(
        query, listing, request.who, request.csrf, flash=request.flash, flash_ok=request.flash_ok
    )
    return request.html(body)


def _error_json(error: SyncError) -> dict[str, object]:
    document = asdict(error)
    for name in ("first_seen", "last_seen"):
        moment = document[name]
        document[name] = moment.isoformat() if isinstance(moment, datetime) else None
    return document


def _errors_json(request: _Request) -> func.HttpResponse:
    listing = _listing(request, _query(request.req))
    return request.data(
        {
            "groups": [
                {"kind": g.kind, "reason": g.reason, "errors": g.errors, "last_seen": g.last_seen.isoformat()}
                for g in listing.groups
            ],
            "errors": [_error_json(e) for e in listing.errors],
            "cursor": listing.cursor,
        }
    )


def _formula_safe(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _errors_csv(request: _Request) -> func.HttpResponse:
    query = _query(request.req)
    errors = request.deps.console_actions.chosen(None, query)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in page.csv_rows(errors):
        writer.writerow([_formula_safe(cell) for cell in row])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = func.HttpResponse(out.getvalue(), status_code=200, mimetype="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="mdsync-errors-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    if len(errors) >= MAX_ITEMS:
        response.headers["X-Mdsync-Truncated"] = f"first {MAX_ITEMS} errors; narrow the filter"
    return response


def _person(request: _Request, person: str) -> func.HttpResponse:
    person = person.strip()
    deps = request.deps
    limit = _limit(request.req, LOG_LIMIT, 1000)
    if person.isdigit():
        entries = deps.state.read_log(marketo_id=int(person), limit=limit)
    elif ":" in person and person.split(":", 1)[0] in ("lead", "contact"):
        entries = deps.state.read_log(dynamics_id=person.split(":", 1)[1], limit=limit)
    else:
        raise BadRequestError("a person is a Marketo id, or lead:<id> / contact:<id>")
    errors = deps.operations.list_errors(ErrorQuery(person=person.split(":")[-1]), limit=100).errors
    if request.req.params.get("format") == "json":
        return request.data(
            {
                "person": person,
                "log": [
                    {
                        "at": e.at.isoformat() if e.at else None,
                        "entity": e.entity,
                        "marketo_id": e.marketo_id,
                        "dynamics_id": e.dynamics_id,
                        "action": e.action,
                        "detail": e.detail,
                        "fields": list(e.fields),
                        "values": e.values,
                    }
                    for e in entries
                ],
                "errors": [_error_json(e) for e in errors],
            }
        )
    body = page.person_page(
        person, entries, errors, request.who, request.csrf, flash=request.flash, flash_ok=request.flash_ok
    )
    return request.html(body)


GET_ROUTES: dict[str, Callable[[_Request], func.HttpResponse]] = {
    "": _status_page,
    "status.json": _status_json,
    "errors": _errors_page,
    "errors.json": _errors_json,
    "errors.csv": _errors_csv,
}


# --- actions -------------------------------------------------------------------------------------


def _form(req: func.HttpRequest) -> dict[str, list[str]]:
    body = req.get_body() or b""
    if len(body) > MAX_FORM_BYTES:
        raise BadRequestError(f"form larger than {MAX_FORM_BYTES} bytes", status=413)
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("form is not UTF-8") from None
    if content_type == "application/json":
        try:
            document = json.loads(text or "{}")
        except ValueError as exc:
            raise BadRequestError(f"body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise BadRequestError("body must be a JSON object")
        return {str(k): [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in document.items()}
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise BadRequestError("send the form as application/x-www-form-urlencoded or JSON", status=415)
    return parse_qs(text, keep_blank_values=True)


def _act(request: _Request, action: str) -> func.HttpResponse:
    req = request.req
    form = _form(req)
    presented = req.headers.get(CSRF_HEADER) or (form.get(CSRF_FIELD) or [""])[0]
    refusal = check_csrf(req.headers, presented, req.url)
    if refusal is not None:
        return error(refusal.status, refusal.message)
    actions = request.deps.console_actions
    who = request.who.name or request.who.id
    try:
        if action == "pause":
            result = actions.pause(who, (form.get("reason") or [""])[0])
        elif action == "resume":
            result = actions.resume(who)
        elif action == "resync":
            person = (form.get("person") or [""])[0]
            if not person.strip():
                raise BadRequestError(
                    "name the person to re-sync (a Marketo id, or lead:<id> / contact:<id>)"
                )
            result = actions.resync(who, person)
        elif action == "replay":
            discard = (form.get("discard") or [""])[0] == "1"
            result = actions.replay(who, _chosen(request, form), discard=discard)
        else:
            return error(404, f"no action {action!r}: replay, resync, pause or resume")
    except MdsyncError as exc:
        if isinstance(exc, BadRequestError):
            raise
        result = ActionResult(action, False, f"{action} failed: {exc}")
    return _outcome(request, result)


def _chosen(request: _Request, form: dict[str, list[str]]) -> list[SyncError]:
    actions = request.deps.console_actions
    if (form.get("all") or [""])[0] == "1":
        filters = {k: v[0] for k, v in parse_qs((form.get("filter") or [""])[0]).items() if v and v[0]}
        query = ErrorQuery(
            kind=filters.get("kind"),
            reason=filters.get("reason"),
            entity=filters.get("entity"),
            person=filters.get("person"),
            field=filters.get("field"),
            text=filters.get("q"),
        )
        return actions.chosen(None, query)
    return actions.chosen(form.get("key") or [], None)


def _outcome(request: _Request, result: ActionResult) -> func.HttpResponse:
    req = request.req
    if _wants_json(req) or req.headers.get(CSRF_HEADER):
        return json_response(200 if result.ok else 409, result.as_dict())
    back = "/api/console"
    referer = urlsplit(req.headers.get("referer") or "")
    own = urlsplit(req.url)
    if (
        referer.netloc == own.netloc
        and referer.path.startswith("/api/console")
        and "/actions/" not in referer.path
    ):
        back = referer.path + (f"?{referer.query}" if referer.query else "")
    response = func.HttpResponse(status_code=303, headers={"Location": back, "Cache-Control": "no-store"})
    flash = ("" if result.ok else "!") + quote(page.result_text(result)[:400])
    response.headers.add(
        "Set-Cookie", f"{FLASH_COOKIE}={flash}; Path=/api/console; Max-Age=60; HttpOnly; SameSite=Strict"
    )
    return response
