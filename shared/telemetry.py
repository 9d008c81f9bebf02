"""Metrics through the OpenTelemetry API, exported to Application Insights when it is configured.

The instruments below are created on the API's global meter. Until a meter provider is set they
are no-ops that cost nothing, which is what local runs and tests get. In Azure,
:func:`configure_from_environment` (called once per process when the container is built, never
at import: import time is cold-start time) sees APPLICATIONINSIGHTS_CONNECTION_STRING and
configures the Azure Monitor OpenTelemetry distro (``azure-monitor-opentelemetry``) for metrics;
the instruments then report through its exporter to the ``customMetrics`` table
(docs/operations.md has the queries). With the component's local authentication off, the
exporter authenticates with the managed identity that APPLICATIONINSIGHTS_AUTHENTICATION_STRING
names. Logs are not exported by the distro: the Functions host already sends the worker's logs.

Attribute values are few and fixed (source, entity, winner, reason class), never ids or emails,
so the metrics stay cheap to store and safe to share.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics

log = logging.getLogger(__name__)

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# The distro's instrumentations trace requests, urllib, Django...: not what mdsync exports.
_INSTRUMENTATIONS = (
    "azure_sdk",
    "django",
    "fastapi",
    "flask",
    "httpx",
    "psycopg2",
    "requests",
    "urllib",
    "urllib3",
)

_meter = metrics.get_meter("mdsync")

notices_received = _meter.create_counter(
    "mdsync.notices.received", unit="{notice}", description="Change notices queued by change capture"
)
persons_synced = _meter.create_counter(
    "mdsync.persons.synced", unit="{person}", description="Persons reconciled by the worker"
)
writes = _meter.create_counter("mdsync.writes", unit="{record}", description="Records written, by direction")
collisions = _meter.create_counter(
    "mdsync.collisions", unit="{field}", description="Fields changed on both sides, by winner"
)
failures = _meter.create_counter("mdsync.failures", unit="{failure}", description="Failed syncs, by reason")
lag = _meter.create_histogram(
    "mdsync.sync.lag", unit="s", description="From the change in the source system to its write in the target"
)


# The console's figures as gauges, set every few minutes by the console_metrics timer
# (shared/console/metrics.py): what the Azure Monitor workbook charts and the alerts watch.
backlog_queued = _meter.create_gauge(
    "mdsync.backlog.queued", unit="{notice}", description="Notices waiting, scheduled or held, by lane"
)
backlog_oldest_age = _meter.create_gauge(
    "mdsync.backlog.oldest_age", unit="s", description="Age of the oldest change still waiting, by lane"
)
backlog_eta = _meter.create_gauge(
    "mdsync.backlog.eta", unit="s", description="Time to clear the backlog at the current rate, by lane"
)
given_up = _meter.create_gauge(
    "mdsync.given_up", unit="{item}", description="Parked notices and dead letters, by kind"
)
errors_open = _meter.create_gauge("mdsync.errors.open", unit="{error}", description="Errors listed, by kind")
marketo_quota_used = _meter.create_gauge(
    "mdsync.marketo.quota_used", unit="1", description="Marketo calls today over the daily quota (0..1)"
)
marketo_calls_today = _meter.create_gauge(
    "mdsync.marketo.calls_today",
    unit="{call}",
    description="mdsync's Marketo calls since midnight US Central",
)
dataverse_window = _meter.create_gauge(
    "mdsync.dataverse.requests_in_window",
    unit="{request}",
    description="Dataverse requests in the 5-minute window",
)
capture_behind = _meter.create_gauge(
    "mdsync.capture.behind", unit="s", description="How far behind each change-capture path is"
)
paused = _meter.create_gauge("mdsync.paused", unit="1", description="1 while the sync is paused")

_configured = False
_lock = threading.Lock()


def configure_from_environment(environ: Mapping[str, str] | None = None, **options: Any) -> bool:
    """Export the metrics to Application Insights if its connection string is set; True if this
    call configured the export. Once per process; a meter provider someone else set (the Python
    worker's own Azure Monitor integration) is left alone. ``options`` go to the distro."""
    global _configured  # noqa: PLW0603 - one meter provider per process is the point
    connection_string = (environ if environ is not None else os.environ).get(CONNECTION_STRING)
    if not connection_string:
        return False
    with _lock:
        if _configured or not _is_proxy(metrics.get_meter_provider()):
            return False
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection_string,
            disable_logging=True,
            disable_tracing=True,
            enable_live_metrics=False,
            enable_performance_counters=False,
            instrumentation_options={name: {"enabled": False} for name in _INSTRUMENTATIONS},
            **options,
        )
        _configured = True
    log.info("metrics are exported to Application Insights")
    return True


def flush(timeout_millis: int = 10_000) -> bool:
    """Export what the configured provider holds now (a test, or a process about to end)."""
    provider = metrics.get_meter_provider()
    force_flush = getattr(provider, "force_flush", None)
    return bool(force_flush(timeout_millis)) if callable(force_flush) else False


def _is_proxy(provider: object) -> bool:
    # The API's placeholder until set_meter_provider is called (the SDK's class is not imported).
    return type(provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider")
