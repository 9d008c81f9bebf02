"""Marketo change campaign: a trigger campaign's Call Webhook queues a notice about a person.

Set up in Marketo as docs/marketo-setup.md describes ("Data Value Changes" on the mapped fields
and "Person is Created", flow: Call Webhook with the function key and the shared secret in
custom headers). Logic in shared/capture/marketo_campaign.py.

Answers: 401 wrong or missing secret; 413/415/400 a body that is not a campaign call (the
message says what); 202 only once the notice is durably queued; 503 with Retry-After when the
queue cannot take it or mdsync is misconfigured (Marketo does not retry: the poller reads the
change in its next run). Nothing is queued unless the answer is 202.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.functions as func

from functions._faults import misconfigured
from functions._http import error, json_response, secret_matches
from functions._marketo_body import body_fields, marketo_id
from shared import telemetry
from shared.bootstrap import container
from shared.capture.marketo_campaign import campaign_notice
from shared.errors import BadRequestError, ConfigurationError, MdsyncError, TransientError

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("marketo_change")
@bp.route(route="marketo/change", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def marketo_change(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _handle(req)
    except ConfigurationError as exc:
        return misconfigured("marketo_change", exc)


def _handle(req: func.HttpRequest) -> func.HttpResponse:
    deps = container()
    deps.app_started()
    settings = deps.settings
    if not secret_matches(req.headers.get(settings.marketo_webhook_header), settings.marketo_webhook_key()):
        return error(401, f"missing or wrong {settings.marketo_webhook_header} header")
    try:
        fields = body_fields(req)
        notice = campaign_notice(
            marketo_id(fields), fields, mapped=deps.mapping.marketo_names(), received_at=datetime.now(UTC)
        )
    except BadRequestError as exc:
        return error(exc.status, str(exc))
    try:
        deps.queue.send([notice])
    except MdsyncError as exc:
        level = logging.WARNING if isinstance(exc, TransientError) else logging.ERROR
        log.log(
            level, "queue cannot take notice %s; the poller will read the change: %s", notice.dedup_id, exc
        )
        return error(503, "the notice queue is unavailable; retry later", headers={"Retry-After": "5"})
    log.info("queued notice %s: %s person %s", notice.dedup_id, notice.kind.value, notice.record_id)
    telemetry.notices_received.add(1, {"source": "marketo", "entity": "person", "via": "webhook"})
    return json_response(202, {"status": "queued", "id": notice.dedup_id})
