"""The worker's metrics as this process records them: the instruments of ``shared.telemetry``
moved onto a meter of the OpenTelemetry SDK read in memory, for the length of a test.

The API's global meter provider can be set once per process (tests/unit/test_telemetry.py runs
the Azure Monitor exporter in interpreters of its own); a provider of the test's own, read by an
``InMemoryMetricReader``, sees every ``add`` the code makes while the test lasts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import telemetry

COUNTERS = ("collisions", "failures", "writes", "persons_synced")
Points = dict[tuple[tuple[str, str], ...], float]


class Recorded:
    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.reader = reader

    def points(self, name: str) -> Points:
        """The counter ``name`` (its attribute in ``shared.telemetry``): its sums so far, by
        their attributes (sorted pairs)."""
        data = self.reader.get_metrics_data()
        found: Points = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            attributes = sorted((k, str(v)) for k, v in (point.attributes or {}).items())
                            found[tuple(attributes)] = point.value  # type: ignore[union-attr]
        return found

    def total(self, name: str) -> float:
        return sum(self.points(name).values())


@contextmanager
def recorded_metrics() -> Iterator[Recorded]:
    provider = MeterProvider(metric_readers=[reader := InMemoryMetricReader()])
    meter = provider.get_meter("mdsync")
    with pytest.MonkeyPatch.context() as patch:
        for name in COUNTERS:
            patch.setattr(telemetry, name, meter.create_counter(name))
        yield Recorded(reader)
    provider.shutdown()
