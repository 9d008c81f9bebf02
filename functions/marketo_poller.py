"""Marketo change capture on a timer (default every minute; MARKETO_POLL_SCHEDULE)."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._faults import log_fault
from shared import telemetry
from shared.bootstrap import container
from shared.console import capture as console_capture
from shared.errors import ConfigurationError, TransientError

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("marketo_poller")
@bp.timer_trigger(
    arg_name="timer", schedule="%MARKETO_POLL_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def marketo_poller(timer: func.TimerRequest) -> None:
    try:
        _run()
    except ConfigurationError as exc:
        # The checkpoint did not move: once the setting is fixed, the next run reads from it.
        log_fault("marketo_poller", exc)


def _run() -> None:
    deps = container()
    deps.app_started()
    calls = deps.marketo.calls.total
    try:
        deps.verify_instance()
        result = deps.marketo_poller.run()
        telemetry.notices_received.add(result.notices, {"source": "marketo", "via": "poll"})
        if not result.skipped:
            console_capture.after_run(
                deps.state,
                deps.operations,
                console_capture.POLL,
                notices=result.notices,
                drained=result.drained,
                marketo_calls=deps.marketo.calls.total - calls,
            )
    except TransientError as exc:
        # The checkpoint did not move: the next run reads the same changes again.
        log.warning("Marketo poll deferred to the next run: %s", exc)
        return
    log.info(
        "Marketo poll: %d notices from %d activities in %d pages%s%s",
        result.notices,
        result.activities,
        result.pages,
        "" if result.drained else " (more waiting)",
        f"; skipped: {result.skipped}" if result.skipped else "",
    )
