"""The console's figures for Azure Monitor, on a timer (default every 5 minutes;
MDSYNC_METRICS_SCHEDULE): one status snapshot, set as gauges (shared/console/metrics.py)."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._faults import log_fault
from shared.bootstrap import container
from shared.console import metrics
from shared.errors import ConfigurationError, TransientError

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("console_metrics")
@bp.timer_trigger(
    arg_name="timer", schedule="%MDSYNC_METRICS_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def console_metrics(timer: func.TimerRequest) -> None:
    try:
        deps = container()
        deps.app_started()
        status = deps.status_reader.read()
    except ConfigurationError as exc:
        log_fault("console_metrics", exc)
        return
    except TransientError as exc:
        log.warning("console metrics skipped this run: %s", exc)
        return
    metrics.record(status)
    log.info(
        "console metrics: %d queued, oldest %.0f s, Marketo quota %.1f%%",
        status.backlog_total,
        max((lane.age_seconds or 0.0 for lane in status.backlog), default=0.0),
        status.budgets.marketo_quota_used * 100,
    )
