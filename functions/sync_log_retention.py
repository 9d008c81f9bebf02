"""The sync log's retention and the local queue file's compaction, daily at 02:45 UTC
(shared/retention.py; SYNC_LOG_RETENTION_DAYS). A fixed schedule: once a day is all it needs."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._faults import log_fault
from shared.bootstrap import container
from shared.errors import ConfigurationError, TransientError

log = logging.getLogger(__name__)
bp = func.Blueprint()

SCHEDULE = "0 45 2 * * *"


@bp.function_name("sync_log_retention")
@bp.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=True)
def sync_log_retention(timer: func.TimerRequest) -> None:
    try:
        deps = container()
        deps.app_started()
        deps.retention.enforce()
    except ConfigurationError as exc:
        log_fault("sync_log_retention", exc)
    except TransientError as exc:
        log.warning("sync log retention deferred to the next run: %s", exc)
