"""The status snapshot's figures as OpenTelemetry gauges, for Azure Monitor: the workbook charts
them and the alert rules watch them (infra/core/alerts.bicep). The ``console_metrics`` timer
sets them every few minutes (MDSYNC_METRICS_SCHEDULE), so an alert fires whether or not anyone
has the console open; without Application Insights they cost nothing (shared/telemetry.py)."""

from __future__ import annotations

from shared import telemetry
from shared.console.failures import DEAD_LETTER, PARKED
from shared.console.status import Status


def record(status: Status) -> None:
    for lane in status.backlog:
        attributes = {
            "lane": f"{lane.entity}-{lane.direction}",
            "entity": lane.entity,
            "direction": lane.direction,
        }
        telemetry.backlog_queued.set(lane.queued, attributes)
        telemetry.backlog_oldest_age.set(lane.age_seconds or 0.0, attributes)
        if lane.eta_seconds is not None:
            telemetry.backlog_eta.set(lane.eta_seconds, attributes)
    for kind in (PARKED, DEAD_LETTER):
        telemetry.given_up.set(status.errors_by_kind.get(kind, 0), {"kind": kind})
    for kind, count in status.errors_by_kind.items():
        telemetry.errors_open.set(count, {"kind": kind})
    budgets = status.budgets
    telemetry.marketo_quota_used.set(budgets.marketo_quota_used)
    telemetry.marketo_calls_today.set(budgets.marketo_calls_today)
    if budgets.dataverse_requests_in_window is not None:
        telemetry.dataverse_window.set(budgets.dataverse_requests_in_window)
    for figure in status.capture:
        if figure.behind_seconds is not None:
            telemetry.capture_behind.set(figure.behind_seconds, {"path": figure.name})
    telemetry.paused.set(1 if status.pause.paused else 0)
