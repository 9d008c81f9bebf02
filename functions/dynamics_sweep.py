"""Dynamics catch-up sweep on a timer (default every 15 minutes; DYNAMICS_SWEEP_SCHEDULE)."""

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


@bp.function_name("dynamics_sweep")
@bp.timer_trigger(
    arg_name="timer", schedule="%DYNAMICS_SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def dynamics_sweep(timer: func.TimerRequest) -> None:
    try:
        _run()
    except ConfigurationError as exc:
        log_fault("dynamics_sweep", exc)


def _run() -> None:
    deps = container()
    deps.app_started()
    calls = deps.dataverse.calls.total
    try:
        deps.verify_instance()
        result = deps.dynamics_sweep.run()
        telemetry.notices_received.add(result.notices, {"source": "dynamics", "via": "sweep"})
        if not result.skipped:
            console_capture.after_run(
                deps.state,
                deps.operations,
                console_capture.SWEEP,
                notices=result.notices,
                dataverse_calls=deps.dataverse.calls.total - calls,
            )
    except TransientError as exc:
        log.warning("Dynamics sweep deferred to the next run: %s", exc)
        return
    log.info(
        "Dynamics sweep: %d notices (%s)%s",
        result.notices,
        result.mode,
        f"; {result.skipped}" if result.skipped else "",
    )
