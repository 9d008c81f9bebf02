"""The initial sync in the function app: start it, see it, and let queue messages advance it.

* ``backfill_start`` (``POST /api/backfill``, the master key: an administrator's call): start a
  job with the options in the JSON body, or resume the unfinished one, and queue its first step.
  Body: ``{"dry_run": bool, "since": "<ISO date>", "ambiguous": "report"|"prefer_contact"|...,
  "created_from": "<ISO date>", "mode": "bulk"|"rest", "restart": bool}``, every member optional.
  202 with the job's progress; 409 when a job is running and ``restart`` is not set... unless
  the body asks nothing new (``{}``), which resumes it; 400 for a bad body, nothing started.
* ``backfill_status`` (``GET /api/backfill``, the master key): the job's progress (status,
  phase, per phase done of total, rate, ETA, counts, the preview); 404 when none has run.
* ``backfill_step`` (the backfill queue, BACKFILL_QUEUE_NAME, one message at a time): one step
  of the job (``shared/backfill/steps.py``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func
from pydantic import ValidationError as PydanticValidationError

from functions._faults import BatchNotRun, log_fault, misconfigured
from functions._http import error, is_json, json_response
from shared.backfill.steps import Step, next_step, run_step
from shared.bootstrap import container
from shared.errors import BadRequestError, ConfigurationError, TransientError

if TYPE_CHECKING:
    from shared.backfill.job import Options

log = logging.getLogger(__name__)
bp = func.Blueprint()

MAX_BODY = 16 * 1024
FIELDS = {"dry_run", "since", "ambiguous", "created_from", "mode", "restart"}


def options_from(req: func.HttpRequest) -> tuple[Options | None, bool]:
    from shared.backfill.job import Options

    """The options a start call asks for (None: it asks nothing, resume), and ``restart``."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        raise BadRequestError(f"body exceeds {MAX_BODY} bytes", status=413)
    if not body.strip():
        return None, False
    if not is_json(req):
        raise BadRequestError("Content-Type must be application/json", status=415)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequestError("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequestError("body must be a JSON object")
    unknown = sorted(set(document) - FIELDS)
    if unknown:
        raise BadRequestError(f"unknown option(s): {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})")
    restart = document.pop("restart", False)
    if not isinstance(restart, bool):
        raise BadRequestError("restart must be true or false")
    if not document:
        return None, restart
    try:
        return Options.model_validate(document), restart
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise BadRequestError(f"invalid options: {problems}") from None


@bp.function_name("backfill_start")
@bp.route(route="backfill", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def backfill_start(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return _start(req)
    except ConfigurationError as exc:
        return misconfigured("backfill_start", exc)


def _start(req: func.HttpRequest) -> func.HttpResponse:
    # The job's modules load on use: import time is every function's cold start.
    from shared.backfill.job import Options
    from shared.backfill.runner import JobRunning
    from shared.backfill.status import progress_of

    deps = container()
    deps.app_started()
    try:
        options, restart = options_from(req)
    except BadRequestError as exc:
        return error(exc.status, str(exc))
    try:
        deps.verify_instance()
        backfill = deps.backfill
        job = backfill.current()
        if options is not None or restart or job is None or job.finished:
            job = backfill.start(options or Options(), restart=restart)
        next_step(deps.backfill_queue, job)
    except JobRunning as exc:
        return error(409, str(exc))
    except TransientError as exc:
        return error(503, f"{exc}; retry later", headers={"Retry-After": "30"})
    log.info("backfill %s queued (status %s, phase %s)", job.id, job.status.value, job.phase.value)
    return json_response(202, _body(progress_of(job)), headers={"Location": req.url.split("?", 1)[0]})


def _body(progress: dict[str, Any]) -> dict[str, Any]:
    return {"status": "accepted", "job": progress}


@bp.function_name("backfill_status")
@bp.route(route="backfill", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def backfill_status(req: func.HttpRequest) -> func.HttpResponse:
    from shared.backfill.status import backfill_progress

    try:
        deps = container()
        deps.app_started()
        progress = backfill_progress(deps.state)
    except ConfigurationError as exc:
        return misconfigured("backfill_status", exc)
    except TransientError as exc:
        return error(503, f"{exc}; retry later", headers={"Retry-After": "30"})
    if progress is None:
        return error(404, "no backfill has run: POST /api/backfill starts one")
    return json_response(200, progress)


@bp.function_name("backfill_step")
@bp.service_bus_queue_trigger(
    arg_name="message", queue_name="%BACKFILL_QUEUE_NAME%", connection="ServiceBusConnection"
)
def backfill_step(message: func.ServiceBusMessage) -> None:
    try:
        step = Step.parse(message.get_body())
    except BadRequestError as exc:
        log.error("dropping message %s from the backfill queue: %s", message.message_id, exc)
        return
    try:
        deps = container()
        deps.app_started()
        deps.verify_instance()
        result = run_step(
            deps.backfill, deps.backfill_queue, step, budget_seconds=deps.settings.backfill_step_seconds
        )
    except ConfigurationError as exc:
        log_fault("backfill_step", exc)
        raise BatchNotRun("configuration fault; the step goes back to the queue") from None
    if result is not None:
        job = result.job
        log.info(
            "backfill %s step %d: %s, phase %s%s",
            job.id,
            job.steps,
            job.status.value,
            job.phase.value,
            f", next in {result.wait:.0f} s" if result.wait is not None and not result.finished else "",
        )
