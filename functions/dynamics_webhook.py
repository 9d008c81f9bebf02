"""Dataverse webhook: Create/Update/Delete of leads and contacts become notices on the queue.

Registered on the Dataverse side as a service endpoint (HttpHeader auth carrying the function key
and the shared secret) with async post-operation steps; see docs/dataverse-webhook.md and
docs/change-capture.md.

Answers: 401 wrong or missing secret; 415 not JSON; 413/400 malformed (the parser's message);
200 ``{"status": "ignored"}`` for a table or message mdsync does not sync; 202 only once the
notice is durably queued; 503 with Retry-After when the queue cannot take it or mdsync is
misconfigured (Dataverse retries a 503 once, and the sweep catches what is still missed).
Nothing is queued unless the answer is 202.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions._faults import misconfigured
from functions._http import error, is_json, json_response, secret_matches
from shared import telemetry
from shared.bootstrap import container
from shared.capture.dataverse_context import Ignored, parse_context
from shared.errors import BadRequestError, ConfigurationError, MdsyncError, TransientError

log = logging.getLogger(__name__)
bp = func.Blueprint()

SIZE_EXCEEDED = "x-ms-dynamics-msg-size-exceeded"


@bp.function_name("dynamics_webhook")
@bp.route(route="dynamics/webhook", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def dynamics_webhook(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _handle(req)
    except ConfigurationError as exc:
        return misconfigured("dynamics_webhook", exc)


def _handle(req: func.HttpRequest) -> func.HttpResponse:
    deps = container()
    deps.app_started()
    settings = deps.settings
    if not secret_matches(req.headers.get(settings.dynamics_webhook_header), settings.dynamics_webhook_key()):
        return error(401, f"missing or wrong {settings.dynamics_webhook_header} header")
    if not is_json(req):
        return error(415, "Content-Type must be application/json (a RemoteExecutionContext)")
    columns = {name: deps.mapping.dynamics_columns(name) for name in ("lead", "contact")}
    try:
        outcome = parse_context(
            req.get_body() or b"",
            columns=columns,
            sync_user_ids=settings.dynamics_sync_user_ids,
            trimmed=req.headers.get(SIZE_EXCEEDED) is not None,
            link_column=deps.mapping.links.dynamics_marketo_id,
        )
    except BadRequestError as exc:
        return error(exc.status, str(exc))
    if isinstance(outcome, Ignored):
        return json_response(200, {"status": "ignored", "reason": outcome.reason})
    try:
        deps.queue.send([outcome])
    except MdsyncError as exc:
        # Transient or not (a missing role, a deleted queue), the sender can only come back later.
        level = logging.WARNING if isinstance(exc, TransientError) else logging.ERROR
        log.log(level, "queue cannot take notice %s, asking Dataverse to retry: %s", outcome.dedup_id, exc)
        return error(503, "the notice queue is unavailable; retry later", headers={"Retry-After": "5"})
    log.info(
        "queued notice %s: %s %s %s",
        outcome.dedup_id,
        outcome.kind.value,
        outcome.entity.value,
        outcome.record_id,
    )
    telemetry.notices_received.add(
        1, {"source": "dynamics", "entity": outcome.entity.value, "via": "webhook"}
    )
    deps.webhook_beat.seen(outcome.entity.value, deps.state, deps.operations)
    return json_response(202, {"status": "queued", "id": outcome.dedup_id})
