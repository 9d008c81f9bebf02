"""'Sync Person to Microsoft': the Marketo Call Webhook flow step (see docs/flow-step.md).

Marketo sends the person's id (and email) as JSON or form-encoded, with the function key and
the shared secret in custom headers. The answer is JSON for the webhook's response mappings.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import azure.functions as func

from functions._http import error, json_response
from shared.auth import secret_matches
from shared.bootstrap import container
from shared.errors import BadRequestError, TransientError
from shared.flow_step import PersonNotFound

log = logging.getLogger(__name__)
bp = func.Blueprint()

MAX_BODY = 64 * 1024


def marketo_id_from(req: func.HttpRequest) -> int:
    """The person id from a JSON or form body (``marketoId``, or ``id``/``leadId``)."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        raise BadRequestError(f"body exceeds {MAX_BODY} bytes", status=413)
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("body is not UTF-8") from None
    if content_type == "application/json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequestError(f"body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise BadRequestError("body must be a JSON object")
        fields = {str(k): v for k, v in document.items()}
    elif content_type == "application/x-www-form-urlencoded":
        fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    else:
        raise BadRequestError(
            "Content-Type must be application/json or application/x-www-form-urlencoded", status=415
        )
    raw = next((fields[k] for k in ("marketoId", "leadId", "id") if k in fields), None)
    if raw is None:
        raise BadRequestError('marketoId is missing (template: {"marketoId": {{lead.Id}}})')
    if isinstance(raw, bool) or not (
        isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit())
    ):
        raise BadRequestError(f"marketoId must be a positive whole number, got {str(raw)[:40]!r}")
    value = int(raw)
    if not 0 < value < 2**53:
        raise BadRequestError("marketoId is out of range")
    return value


@bp.function_name("sync_person_to_microsoft")
@bp.route(route="marketo/sync-person", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def sync_person_to_microsoft(req: func.HttpRequest) -> func.HttpResponse:
    deps = container()
    settings = deps.settings
    if not secret_matches(req.headers.get(settings.flow_step_header), settings.flow_step_secret):
        return error(401, f"missing or wrong {settings.flow_step_header} header")
    try:
        marketo_id = marketo_id_from(req)
    except BadRequestError as exc:
        return error(exc.status, str(exc))
    try:
        outcome = deps.flow_step.run(marketo_id)
    except PersonNotFound as exc:
        return error(404, str(exc))
    except TransientError as exc:
        log.warning("flow step for person %d: a service is unavailable: %s", marketo_id, exc)
        retry = str(int(exc.retry_after)) if exc.retry_after else "30"
        return error(503, f"{exc.service} is unavailable; retry later", headers={"Retry-After": retry})
    log.info("flow step for person %d: %s %s", marketo_id, outcome.status, outcome.dynamics_id or "")
    return json_response(200, outcome.body())
