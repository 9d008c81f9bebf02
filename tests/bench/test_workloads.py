"""The bench's burst workloads and the harness controls they use, on the test session's system.

Small sizes: what is checked is that a burst syncs completely through the real function app and
costs what batching promises (one Marketo read and one write per 300 persons), not how fast."""

from __future__ import annotations

import pytest

from mdsync.bench.peer import peer_to_dynamics, peer_to_marketo
from mdsync.bench.runner import WHOLE_API, _project
from mdsync.bench.seed import seed_pairs
from mdsync.bench.stores import store_key
from mdsync.bench.workloads import burst_to_dynamics, burst_to_marketo
from mdsync.harness import LocalSystem

PAIRS = 300  # one Marketo batch


def test_a_dynamics_backlog_syncs_in_one_marketo_read_and_one_write(system: LocalSystem) -> None:
    pairs = seed_pairs(system, "lead", PAIRS, tag="bt")
    result = burst_to_marketo(system, pairs, "t1")
    assert result.landed == PAIRS
    endpoints = result.calls.marketo_by_endpoint
    assert endpoints["GET /rest/v1/leads.json"] == 1
    assert endpoints["POST /rest/v1/leads.json"] == 1
    assert result.extra["worker_batches"]["max_notices"] == PAIRS  # the whole backlog at once
    assert result.extra["arrival_seconds"] > 0


def test_a_marketo_burst_syncs_from_one_poll_run(system: LocalSystem) -> None:
    pairs = seed_pairs(system, "lead", PAIRS, tag="bu")
    result = burst_to_dynamics(system, pairs, "t2")
    assert result.landed == PAIRS
    endpoints = result.calls.marketo_by_endpoint
    assert endpoints["GET /rest/v1/activities/leadchanges.json"] == 1
    # The pairs were synced an hour before: the activities carry the values, nothing is read.
    assert "GET /rest/v1/leads.json" not in endpoints
    assert "POST /rest/v1/leads.json" not in endpoints  # nothing written back to Marketo


def test_settings_changed_rebuilds_the_clients_and_restores_them(system: LocalSystem) -> None:
    before = system.deps.settings.marketo_max_calls_per_20s
    with system.settings_changed(WHOLE_API):
        settings = system.deps.settings
        assert settings.marketo_max_calls_per_20s == int(WHOLE_API["MARKETO_MAX_CALLS_PER_20S"])
        reserved = int(WHOLE_API["MARKETO_FLOW_STEP_CALLS_PER_20S"])  # no backfill holds its share
        assert system.deps.marketo.max_calls_per_20s == 100 - reserved  # the worker's share
    assert system.deps.settings.marketo_max_calls_per_20s == before


def _workload(calls_per_20s: int, seconds: float, marketo: float) -> dict[str, object]:
    return {
        "changes_per_second": 10_000 / seconds,
        "marketo_calls_per_change": marketo,
        "dataverse_calls_per_change": 0.005,
        "worker_marketo_calls_per_20s": calls_per_20s,
    }


def test_the_projection_is_bound_by_the_calls_the_client_may_make() -> None:
    workloads = {
        "burst_to_marketo": _workload(60, 10, 0.0103),
        store_key("burst_to_marketo", "sqlite"): _workload(95, 10, 0.0103),
        "naive_to_marketo": _workload(60, 1000, 2.0),
    }
    _project(workloads)
    shipped, whole = workloads["burst_to_marketo"], workloads[store_key("burst_to_marketo", "sqlite")]
    # Bound by the Marketo calls each run's client may make, not by its 1,000/s measured.
    assert shipped["projected_changes_per_second"] == 3 / 0.0103
    assert whole["projected_changes_per_second"] == 4.75 / 0.0103
    assert whole["projected_fraction_of_ceiling_at_share"] == pytest.approx(
        shipped["projected_fraction_of_ceiling_at_share"]
    )


def test_a_batching_peer_syncs_each_way_in_batched_calls(system: LocalSystem) -> None:
    pairs = seed_pairs(system, "lead", PAIRS, tag="bp")
    to_dynamics = peer_to_dynamics(system, pairs, "p1")
    assert to_dynamics.landed == PAIRS
    endpoints = to_dynamics.calls.marketo_by_endpoint
    assert endpoints["GET /rest/v1/activities/leadchanges.json"] <= 2  # a page, maybe an empty one
    assert to_dynamics.calls.dataverse_by_endpoint["POST leads/UpdateMultiple"] == 1  # no read
    to_marketo = peer_to_marketo(system, pairs, "p2")
    assert to_marketo.landed == PAIRS
    endpoints = to_marketo.calls.marketo_by_endpoint
    assert endpoints["POST /rest/v1/leads.json"] == 1  # no read before the write
    assert "GET /rest/v1/leads.json" not in endpoints
    assert endpoints["GET /rest/v1/activities/leadchanges.json"] == 1  # its echoes
    assert to_marketo.calls.dataverse_by_endpoint == {"GET leads": 2}  # 250 ids a query
    for result in (to_dynamics, to_marketo):
        assert sum(result.extra["timeline"]["landed_per_second"]) == PAIRS
    system.sync()  # nothing of the peer's reached mdsync's queue: the webhooks were dropped
