"""The bench's bursts on the Table state store (Azurite), as ``make bench`` runs them beside
SQLite: every change lands, and the Table Storage requests are counted.

Each store runs in its own process, as in the bench: a local system sets its process's settings
and container (which the test session's own system uses) and indexes the function app."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mdsync.azurite import ensure_installed
from mdsync.bench.runner import SHIPPED_POLL, WHOLE_API
from mdsync.bench.stores import store_bursts

pytestmark = pytest.mark.azurite

BURST = 60


def test_both_bursts_land_on_the_table_store_and_its_requests_are_counted() -> None:
    ensure_installed()
    with tempfile.TemporaryDirectory() as folder:
        results = store_bursts(
            ("table",),
            burst=BURST,
            workdir=Path(folder),
            settings={**SHIPPED_POLL, **WHOLE_API},
            window=None,
            say=lambda text: None,
        )
    assert set(results) == {"burst_to_dynamics_state_table", "burst_to_marketo_state_table"}
    for result in results.values():
        assert result["state_store"] == "table"
        assert (result["changes"], result["lost"]) == (BURST, 0)
        requests = result["calls"]["table_storage_by_endpoint"]
        # The sync log of a worker batch: a transaction per partition of the day's table, not
        # a write per person and per record.
        assert 0 < requests.get("POST $batch", 0) <= 20
        # The links are found by person (the Marketo id each record's link column holds), in
        # range reads: not a query per claim partition (60 records fall in ~53 of them).
        assert requests.get("GET links", 0) <= BURST // 5
        assert requests.get("GET shadows", 0) <= BURST // 5
        assert result["calls"]["table_storage"] == sum(requests.values())
        assert result["azurite_cpu_seconds"] > 0  # the emulator's own process, measured
