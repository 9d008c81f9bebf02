"""The bursts on each state store, side by side: SQLite (the local default) and Azure Table
Storage, the production store, on Azurite.

For each store a fresh local system (simulators, the local host, the SQLite queue) runs with
that state store and Marketo's whole rate (as the main run's ``_whole_api`` bursts), seeds the
same linked leads, and runs the same two bursts. With Table Storage every request the process
sends to it is counted (``TableStateStore.requests``): the worker's links, shadows and sync log,
the console's records, the capture checkpoints and the shared Marketo budget.

Azurite answers from memory on this machine, so its requests cost less than Azure's (a few ms
within a region): the rate measured here is an upper bound for Table Storage, and the requests
per change are what to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mdsync import azurite
from mdsync.bench.meter import settle
from mdsync.bench.seed import seed_pairs
from mdsync.bench.workloads import WorkloadResult, burst_to_dynamics, burst_to_marketo
from mdsync.harness import HarnessConfig, LocalSystem
from simulators.stack import StackConfig

STORES = ("sqlite", "table")
KEYS = ("burst_to_dynamics", "burst_to_marketo")


def store_key(workload: str, store: str) -> str:
    return f"{workload}_state_{store}"


def store_bursts(
    stores: tuple[str, ...],
    *,
    burst: int,
    workdir: Path,
    stack: Callable[[], StackConfig],
    settings: Mapping[str, str],
    window: float | None,
    say: Callable[[str], None],
) -> dict[str, WorkloadResult]:
    """Both bursts of ``burst`` changes on each store in ``stores``, by :func:`store_key`."""
    results: dict[str, WorkloadResult] = {}
    for store in stores:
        folder = workdir / f"state-{store}"
        if store == "table":
            with azurite.running(folder / "azurite") as url:
                table = {
                    "MDSYNC_STATE_BACKEND": "table",
                    "STATE_CONNECTION_STRING": url,
                    "STATE_TABLE_PREFIX": "bench",
                }
                config = HarnessConfig(folder, stack=stack(), extra_settings={**settings, **table})
                results |= _bursts(store, burst, config, window=window, say=say)
        else:
            config = HarnessConfig(folder, stack=stack(), extra_settings=dict(settings))
            results |= _bursts(store, burst, config, window=window, say=say)
    return results


def _bursts(
    store: str, burst: int, config: HarnessConfig, *, window: float | None, say: Callable[[str], None]
) -> dict[str, WorkloadResult]:
    system = LocalSystem(config)
    results: dict[str, WorkloadResult] = {}
    with system:
        say(f"state store {store}: seeding {burst} linked leads")
        pairs = seed_pairs(system, "lead", burst, tag=f"{store}lead")
        settle(system, window=window)
        runs: dict[str, Callable[[], WorkloadResult]] = {
            "burst_to_dynamics": lambda: burst_to_dynamics(system, pairs, f"{store}bd"),
            "burst_to_marketo": lambda: burst_to_marketo(system, pairs, f"{store}bm"),
        }
        for workload, run in runs.items():
            say(f"  {workload.replace('_', ' ')} on {store} ...")
            started = time.monotonic()
            result = run()
            result.extra["state_store"] = store
            result.extra["worker_marketo_calls_per_20s"] = system.deps.marketo.max_calls_per_20s
            results[store_key(workload, store)] = result
            say(
                f"  {result.changes} changes in {result.seconds:.1f} s = {result.rate:.1f}/s, "
                f"{result.calls.state} Table Storage requests "
                f"({time.monotonic() - started:.0f} s with the echoes)"
            )
            settle(system, window=window)
    return results
