"""The bench's bursts on the Table state store (Azurite), as ``make bench`` runs them beside
SQLite: every change lands, and the Table Storage requests are counted.

Each store runs in its own process, as in the bench: a local system sets its process's settings
and container (which the test session's own system uses) and indexes the function app."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mdsync.azurite import ensure_installed
from mdsync.bench.runner import SHIPPED_POLL, WHOLE_API
from mdsync.bench.stores import store_bursts

BURST = 60
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.azurite
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


def _stores(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m mdsync.bench.stores`` as a person runs it (the bench's settings)."""
    settings = json.dumps({**SHIPPED_POLL, **WHOLE_API})
    command = [sys.executable, "-m", "mdsync.bench.stores", *args, "--settings", settings]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_the_stores_command_runs_only_the_bursts_it_is_given() -> None:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.json"
        done = _stores("sqlite", "20", folder, str(output), "--bursts", "to_marketo")
        assert done.returncode == 0, done.stderr[-3000:]
        results = json.loads(output.read_text(encoding="utf-8"))
    assert set(results) == {"burst_to_marketo_state_sqlite"}
    (result,) = results.values()
    assert (result["changes"], result["lost"]) == (20, 0)
    assert "burst to dynamics" not in done.stdout


@pytest.mark.parametrize("bursts", ["to_nowhere", "to_marketo,marketo", ""])
def test_an_unknown_burst_is_a_usage_error_before_anything_runs(bursts: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.json"
        done = _stores("sqlite", "20", folder, str(output), "--bursts", bursts)
        assert not output.exists()
    assert done.returncode == 2
    assert "usage:" in done.stderr
    assert "choose from to_dynamics, to_marketo" in done.stderr
    assert "seeding" not in done.stdout
