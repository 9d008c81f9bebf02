"""'Sync Person to Microsoft': the Marketo Call Webhook flow step (see docs/flow-step.md).

Marketo sends the person's id (and email) as JSON or form-encoded, with the function key and
the shared secret in custom headers. The answer is JSON for the webhook's response mappings:
200 with ``created``/``exists``/``failed``; 4xx for a bad key or a malformed request (nothing
changed); 503 when Dataverse or Marketo stayed unavailable within the time budget, or when
mdsync is misconfigured (the body names the setting, never its value).
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any
from urllib.parse import parse_qs

import azure.functions as func

from functions._faults import misconfigured
from functions._http import error, is_json, json_response, secret_matches
from shared.bootstrap import container
from shared.errors import BadRequestError, ConfigurationError, PermanentError, TransientError
from shared.flow_step import PersonNotFound
from shared.redaction import redact

log = logging.getLogger(__name__)
bp = func.Blueprint()

MAX_BODY = 64 * 1024
ID_FIELDS = ("marketoId", "leadId", "id")
FORM = "application/x-www-form-urlencoded"
_DIGITS = re.compile(r"[0-9]{1,16}")
MAX_ID = 2**53 - 1  # Marketo ids are integers; JSON numbers stay exact below 2**53


def _fields(req: func.HttpRequest) -> dict[str, Any]:
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        raise BadRequestError(f"body exceeds {MAX_BODY} bytes", status=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("body is not UTF-8") from None
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type not in ("", FORM) and not is_json(req):
        raise BadRequestError(f"Content-Type must be application/json or {FORM}", status=415)
    # A JSON template sent without its Content-Type header arrives as Marketo's default type.
    if is_json(req) or text.lstrip().startswith("{"):
        return _json_fields(text)
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _json_fields(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, huge integers
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequestError("body must be a JSON object")
    return {str(k): v for k, v in document.items()}


def marketo_id_from(req: func.HttpRequest) -> int:
    """The person id from a JSON or form body (``marketoId``, or ``leadId``/``id``)."""
    fields = _fields(req)
    raw = next((fields[k] for k in ID_FIELDS if k in fields), None)
    if raw is None:
        raise BadRequestError('marketoId is missing (template: {"marketoId": {{lead.Id}}})')
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and _DIGITS.fullmatch(raw.strip()):
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise BadRequestError(f"marketoId must be a positive whole number, got {str(raw)[:40]!r}")
    if not 0 < raw <= MAX_ID:
        raise BadRequestError(f"marketoId must be between 1 and {MAX_ID}")
    return raw


@bp.function_name("sync_person_to_microsoft")
@bp.route(route="marketo/sync-person", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def sync_person_to_microsoft(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _handle(req)
    except ConfigurationError as exc:
        return misconfigured("sync_person_to_microsoft", exc)


def _handle(req: func.HttpRequest) -> func.HttpResponse:
    deps = container()
    deps.app_started()
    settings = deps.settings
    if not secret_matches(req.headers.get(settings.flow_step_header), settings.flow_step_key()):
        return error(401, f"missing or wrong {settings.flow_step_header} header")
    try:
        marketo_id = marketo_id_from(req)
    except BadRequestError as exc:
        return error(exc.status, str(exc))
    try:
        deps.verify_instance()
        outcome = deps.flow_step.run(marketo_id)
    except PersonNotFound as exc:
        return error(404, str(exc))
    except TransientError as exc:
        log.warning("flow step for person %d: a service is unavailable: %s", marketo_id, redact(str(exc)))
        retry = str(max(1, math.ceil(exc.retry_after))) if exc.retry_after else "30"
        return error(503, f"{exc}; retry later", headers={"Retry-After": retry})
    except PermanentError as exc:
        # Not the person's data (that answers "failed"): a permission or an unexpected refusal.
        log.error("flow step for person %d: refused: %s", marketo_id, redact(str(exc)))
        return error(502, str(exc))
    log.info("flow step for person %d: %s %s", marketo_id, outcome.status, outcome.dynamics_id or "")
    return json_response(200, outcome.body())
