"""'Sync Person to Microsoft': the Marketo Call Webhook flow step (see docs/flow-step.md).

Marketo sends the person's id (and email) as JSON or form-encoded, with the function key and
the shared secret in custom headers. The answer is JSON for the webhook's response mappings:
200 with ``created``/``exists``/``failed``; 4xx for a bad key or a malformed request (nothing
changed); 503 when Dataverse or Marketo stayed unavailable within the time budget, or when
mdsync is misconfigured (the body names the setting, never its value).
"""

from __future__ import annotations

import logging
import math

import azure.functions as func

from functions._faults import misconfigured
from functions._http import error, json_response, secret_matches
from functions._marketo_body import marketo_id_from
from shared.bootstrap import container
from shared.errors import BadRequestError, ConfigurationError, PermanentError, TransientError
from shared.flow_step import PersonNotFound
from shared.redaction import redact

log = logging.getLogger(__name__)
bp = func.Blueprint()


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
