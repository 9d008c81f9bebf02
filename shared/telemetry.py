"""Metrics through the OpenTelemetry API; exported to Application Insights by the Azure Monitor
distro that the Functions Python worker starts when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY
is true (without an SDK configured, the API's no-op meter makes these free).

Attribute values are few and fixed (source, entity, winner, reason class), never ids or emails,
so the metrics stay cheap to store and safe to share.
"""

from __future__ import annotations

from opentelemetry import metrics

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
