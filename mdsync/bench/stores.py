"""The bursts on each state store, side by side: SQLite (the local default) and Azure Table
Storage, the production store, on Azurite.

For each store a fresh local system (simulators, the local host, the SQLite queue), in its own
process, runs with that state store and Marketo's whole rate (as the main run's ``_whole_api``
bursts), seeds the same linked leads, and runs the same two bursts. With Table Storage every
request the process sends to it is counted (``TableStateStore.requests``): the worker's links,
shadows and sync log, the console's records, the capture checkpoints and the shared Marketo
budget.

Azurite answers from memory on this machine, so its requests cost less than Azure's (a few ms
within a region): the rate measured here is an upper bound for Table Storage, and the requests
per change are what to read.

Run alone, ``python -m mdsync.bench.stores STORE CHANGES WORKDIR OUTPUT`` runs both bursts
(Marketo -> Dynamics, then Dynamics -> Marketo); ``--bursts to_marketo`` (or ``to_dynamics``, or
both comma-separated, in the order given) runs only those, and ``--peer`` the batching peer's in
the same directions after them. ``mdsync bench`` always runs both.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mdsync import azurite
from mdsync.bench.meter import fresh_window, settle
from mdsync.bench.peer import peer_to_dynamics, peer_to_marketo
from mdsync.bench.seed import Pair, freeze_seeded, seed_pairs
from mdsync.bench.workloads import WorkloadResult, burst_to_dynamics, burst_to_marketo
from mdsync.harness import HarnessConfig, LocalSystem
from simulators.dataverse.config import DataverseSimConfig
from simulators.dataverse.limits import ServiceLimits
from simulators.marketo.config import Limits, MarketoSimConfig
from simulators.stack import StackConfig

STORES = ("sqlite", "table")
KEYS = ("burst_to_dynamics", "burst_to_marketo")
# The directions a run may choose (``--bursts``), in the order the bench runs them.
DIRECTIONS = ("to_dynamics", "to_marketo")


def store_key(workload: str, store: str) -> str:
    return f"{workload}_state_{store}"


def store_bursts(
    stores: tuple[str, ...],
    *,
    burst: int,
    workdir: Path,
    settings: Mapping[str, str],
    window: float | None,
    say: Callable[[str], None],
    peer_on: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Both bursts of ``burst`` changes on each store in ``stores``, by :func:`store_key`, as
    JSON; on the store ``peer_on``, the batching peer's two after them (``peer_to_*``). Each
    store runs in its own process: a process indexes the function app once."""
    results: dict[str, dict[str, Any]] = {}
    for store in stores:
        output = workdir / f"state-{store}.json"
        command = [sys.executable, "-m", "mdsync.bench.stores", store, str(burst), str(workdir), str(output)]
        command += ["--settings", json.dumps(dict(settings))]
        if window is not None:
            command += ["--window", str(window)]
        if store == peer_on:
            command += ["--peer"]
        errors = workdir / f"state-{store}.stderr"
        with errors.open("w", encoding="utf-8") as stderr:
            # Its lines as they come: the 100,000-change bursts take many minutes.
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)  # noqa: S603 - our own
            assert process.stdout is not None
            for line in process.stdout:
                say(line.rstrip())
            code = process.wait()
        if code != 0:
            tail = errors.read_text(encoding="utf-8")[-3000:]
            raise RuntimeError(f"the bursts on {store} failed ({code}):\n{tail}")
        results |= json.loads(output.read_text(encoding="utf-8"))
    return results


def _in_process(
    store: str,
    burst: int,
    workdir: Path,
    settings: dict[str, str],
    window: float | None,
    *,
    peer: bool,
    save: Callable[[dict[str, WorkloadResult]], None],
    directions: tuple[str, ...] = DIRECTIONS,
) -> dict[str, WorkloadResult]:
    folder = workdir / f"state-{store}"
    run = functools.partial(_bursts, window=window, peer=peer, save=save, directions=directions)
    say = functools.partial(print, flush=True)
    if store == "table":
        with azurite.started(folder / "azurite") as server:
            table = {
                "MDSYNC_STATE_BACKEND": "table",
                "STATE_CONNECTION_STRING": server.url,
                "STATE_TABLE_PREFIX": "bench",
            }
            config = HarnessConfig(folder, stack=documented_limits(), extra_settings={**settings, **table})
            return run(store, burst, config, say=say, emulator=server)
    config = HarnessConfig(folder, stack=documented_limits(), extra_settings=settings)
    return run(store, burst, config, say=say)


def _bursts(
    store: str,
    burst: int,
    config: HarnessConfig,
    *,
    window: float | None,
    say: Callable[[str], None],
    peer: bool,
    save: Callable[[dict[str, WorkloadResult]], None],
    directions: tuple[str, ...] = DIRECTIONS,
    emulator: azurite.Azurite | None = None,
) -> dict[str, WorkloadResult]:
    """The bursts in ``directions``, in that order (with ``peer``, the batching peer's in the
    same directions after them). ``save`` gets the results so far after each burst: a
    100,000-change run on Table Storage takes the better part of an hour, and one cut short
    keeps the bursts it finished. With ``emulator``, each burst also reports Azurite's own CPU
    seconds (its Node.js process)."""
    system = LocalSystem(config)
    results: dict[str, WorkloadResult] = {}
    with system:
        say(f"state store {store}: seeding {burst} linked leads")
        seeding = time.monotonic()
        pairs = seed_pairs(system, "lead", burst, tag=f"{store}lead")
        seeded = {"seeded_pairs": burst, "seed_seconds": round(time.monotonic() - seeding, 1)}
        say(f"  seeded in {seeded['seed_seconds']:.0f} s")
        settle(system, window=window)
        freeze_seeded()
        bursts: dict[str, Callable[[], WorkloadResult]] = {
            "to_dynamics": lambda: burst_to_dynamics(system, pairs, f"{store}bd"),
            "to_marketo": lambda: burst_to_marketo(system, pairs, f"{store}bm"),
        }
        for direction in directions:
            workload, run = f"burst_{direction}", bursts[direction]
            say(f"  {workload.replace('_', ' ')} on {store} ...")
            started, load, cpu = time.monotonic(), os.getloadavg(), _cpu_seconds()
            emulator_cpu = emulator.cpu_seconds() if emulator else 0.0
            result = run()
            result.extra["load_average"] = _load(load)
            result.extra |= _cpu(cpu, result.changes)
            if emulator:
                result.extra |= _cpu(emulator_cpu, result.changes, emulator.cpu_seconds(), "azurite_")
            result.extra |= {"state_store": store, **seeded}
            result.extra["worker_marketo_calls_per_20s"] = system.deps.marketo.max_calls_per_20s
            results[store_key(workload, store)] = result
            say(
                f"  {result.changes} changes in {result.seconds:.1f} s = {result.rate:.1f}/s, "
                f"{result.calls.state} Table Storage requests, "
                f"{result.extra['cpu_seconds_per_1000']:.1f} CPU s per 1,000 changes"
                + (f" (Azurite {result.extra['azurite_cpu_seconds_per_1000']:.2f})" if emulator else "")
                + f" ({time.monotonic() - started:.0f} s with the echoes)"
            )
            save(results)
            settle(system, window=window)
        if peer:
            results |= _peer(system, pairs, store, window=window, say=say, directions=directions)
    return results


def _peer(
    system: LocalSystem,
    pairs: list[Pair],
    store: str,
    *,
    window: float | None,
    say: Callable[[str], None],
    directions: tuple[str, ...] = DIRECTIONS,
) -> dict[str, WorkloadResult]:
    """The batching peer's bursts on the same pairs, limits and clients, last: between and
    after them mdsync's sync is left alone (no poll reads the peer's activities)."""
    results: dict[str, WorkloadResult] = {}
    bursts: dict[str, Callable[[], WorkloadResult]] = {
        "to_dynamics": lambda: peer_to_dynamics(system, pairs, f"{store}pd"),
        "to_marketo": lambda: peer_to_marketo(system, pairs, f"{store}pm"),
    }
    for direction in directions:
        workload, run = f"peer_{direction}", bursts[direction]
        say(f"  {workload.replace('_', ' ')} (batching peer) ...")
        load = os.getloadavg()
        result = run()
        result.extra["load_average"] = _load(load)
        result.extra["worker_marketo_calls_per_20s"] = system.deps.marketo.max_calls_per_20s
        results[workload] = result
        say(f"  {result.changes} changes in {result.seconds:.1f} s = {result.rate:.1f}/s")
        fresh_window(system, window=window)
    return results


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _cpu(before: float, changes: int, after: float | None = None, prefix: str = "") -> dict[str, float]:
    """The CPU seconds the burst took, until quiet again (echoes included), of every part of the
    local system: the simulators, the local host and the bench share this one process (or, given
    ``after``, of another process: Azurite's)."""
    seconds = (_cpu_seconds() if after is None else after) - before
    per_1000 = seconds / max(changes, 1) * 1000
    return {f"{prefix}cpu_seconds": round(seconds, 1), f"{prefix}cpu_seconds_per_1000": round(per_1000, 2)}


def _load(before: tuple[float, float, float]) -> dict[str, list[float]]:
    """The machine's load average (1, 5, 15 min) before and after a burst: its measured rate is
    of this machine as much as of the API, and other work on it slows the burst."""
    return {"before": [round(x, 2) for x in before], "after": [round(x, 2) for x in os.getloadavg()]}


def documented_limits() -> StackConfig:
    """The simulators with their documented limits."""
    return StackConfig(
        marketo=MarketoSimConfig(limits=Limits()), dataverse=DataverseSimConfig(limits=ServiceLimits())
    )


def directions_of(text: str) -> tuple[str, ...]:
    """``--bursts``: burst directions, comma-separated (``to_dynamics,to_marketo``), each once."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DIRECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown burst {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"choose from {', '.join(DIRECTIONS)}, comma-separated"
        )
    return tuple(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the bench's bursts on one state store")
    parser.add_argument("store", choices=STORES)
    parser.add_argument("burst", type=int)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--window", type=float, default=None)
    parser.add_argument("--peer", action="store_true", help="the batching peer's bursts after ours")
    parser.add_argument(
        "--bursts",
        type=directions_of,
        default=DIRECTIONS,
        metavar="to_dynamics,to_marketo",
        help="the bursts to run, in this order (default: both; Marketo -> Dynamics first)",
    )
    args = parser.parse_args(argv)
    settings = json.loads(args.settings)

    def save(results: dict[str, WorkloadResult]) -> None:
        args.output.write_text(json.dumps({k: r.to_json() for k, r in results.items()}), encoding="utf-8")

    save(
        _in_process(
            args.store,
            args.burst,
            args.workdir,
            settings,
            args.window,
            peer=args.peer,
            save=save,
            directions=args.bursts,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
