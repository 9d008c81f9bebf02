"""``mdsync bench``: every workload against the simulators with their documented limits on.

One LocalSystem (simulators, the local host running function_app.py, SQLite queue and state) is
started with the simulators' default limits, which are the documented ones (Marketo 100 calls per
20 s, 300 records a call, 10 concurrent, 50,000 a day; Dataverse 6000 requests per 300 s, 52
concurrent, 20 minutes of execution per 300 s). mdsync runs with its shipped settings. The
workloads run one after the other; in the full run the bench waits between them until Marketo's
rate window is empty, so each starts with the whole budget.

Then the two bursts run on each state store, each in a fresh process, with Marketo's whole rate
given to mdsync (WHOLE_API) and, in the full run, 100,000 changes each: long enough for the rate
windows to bind, so their sustained rate is measured over their timeline (bench/timeline.py), the
runs the ceiling target is judged on. The batching peer (bench/peer.py) runs after them on the
SQLite one, on the same pairs and limits.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from mdsync.bench import capacity as cap
from mdsync.bench import console_pages, draw_charts
from mdsync.bench.config import (
    BURST_POLL_SECONDS,
    FULL,
    MARKETO_WINDOW_SECONDS,
    QUICK,
    SHIPPED_POLL_SECONDS,
    STEADY_POLL_SECONDS,
    BenchSizes,
)
from mdsync.bench.flowstep import flow_step_latency
from mdsync.bench.instances import shared_budget
from mdsync.bench.meter import settle
from mdsync.bench.naive import naive_to_dynamics, naive_to_marketo
from mdsync.bench.process import cold_start, worker_probe
from mdsync.bench.report import Check, at_least, at_most, print_report, unmeasured
from mdsync.bench.seed import Pair, freeze_seeded, seed_pairs
from mdsync.bench.stores import KEYS as STORE_BURSTS
from mdsync.bench.stores import STORES, documented_limits, store_bursts, store_key
from mdsync.bench.timeline import too_short
from mdsync.bench.window import evenly, projection
from mdsync.bench.workloads import WorkloadResult, burst_to_dynamics, burst_to_marketo, collisions, steady
from mdsync.harness import HarnessConfig, LocalSystem
from shared.backfill.share import live_calls
from shared.config import Settings

CAPACITY_LEVELS = (10_000, 50_000, 100_000, 1_000_000, 3_000_000)
# A Marketo instance whose rate is mdsync's alone: the bursts on each state store run with these
# settings, the sync's client then allowed 95 of Marketo's 100 calls per 20 s (5 left for the
# flow step).
# The live sync with (almost) the whole API: no backfill runs in the bench's live workloads.
WHOLE_API = {
    "MARKETO_MAX_CALLS_PER_20S": "100",
    "MARKETO_FLOW_STEP_CALLS_PER_20S": "5",
    "MARKETO_BACKFILL_CALLS_PER_20S": "1",
}
INSTANCES = 4
# The harness reads deletions on every poll it triggers; the bench polls as shipped.
SHIPPED_POLL = {
    "MARKETO_DELETES_POLL_SECONDS": str(Settings.model_fields["marketo_deletes_poll_seconds"].default)
}
DIRECTIONS = {
    f"{kind}_{way}": way for kind in ("naive", "peer", "burst") for way in ("to_marketo", "to_dynamics")
}
DIRECTIONS |= {store_key(key, store): DIRECTIONS[key] for key in STORE_BURSTS for store in STORES}
# Not mdsync: their losses and calls are theirs.
BASELINES = ("naive", "peer")
LABELS = {"to_marketo": "Dynamics -> Marketo", "to_dynamics": "Marketo -> Dynamics"}


class _Run:
    def __init__(
        self, system: LocalSystem, sizes: BenchSizes, quick: bool, console: Console, workdir: Path
    ) -> None:
        self.workdir = workdir
        self.system = system
        self.sizes = sizes
        self.console = console
        self.window: float | None = None if quick else MARKETO_WINDOW_SECONDS
        self.workloads: dict[str, WorkloadResult] = {}
        # The bursts on each state store, as JSON from their own processes (bench/stores.py).
        self.store_workloads: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}")

    def run(self) -> None:
        sizes, system = self.sizes, self.system
        self.say(f"seeding {sizes.leads} linked leads and {sizes.contacts} linked contacts")
        leads = seed_pairs(system, "lead", sizes.leads, tag="lead")
        contacts = seed_pairs(system, "contact", sizes.contacts, tag="contact")
        settle(system, window=self.window)
        freeze_seeded()
        # At the shipped share; the bursts with Marketo's whole rate (where the ceiling is judged)
        # run on each state store, large enough for the rate windows to bind (bench/stores.py).
        self._bursts(leads[: sizes.burst])
        half = sizes.collisions // 2
        clashing = [*leads[:half], *contacts[: sizes.collisions - half]]
        self._workload(
            "collisions", lambda: collisions(system, clashing, "cx", poll_seconds=BURST_POLL_SECONDS)
        )
        self._workload(
            "steady",
            lambda: steady(
                system,
                leads,
                "st",
                rate=sizes.steady_rate,
                seconds=sizes.steady_seconds,
                poll_seconds=STEADY_POLL_SECONDS,
            ),
        )
        # Marketo -> Dynamics through the change campaign, the poller at its shipped schedule.
        self._workload("steady_campaign", lambda: self._steady_campaign(leads[len(leads) // 2 :]))
        # A million changes a day arriving evenly, the batching window off and then open.
        even = sizes.even_seconds
        self._workload("even_window_off", lambda: evenly(system, leads, "ew0", seconds=even, window=False))
        self._workload("even_window_on", lambda: evenly(system, leads, "ew1", seconds=even, window=True))
        # The naive baseline's sustained rate does not depend on the rate window it starts with
        # (see _project), so it runs after the workloads whose measured rate does.
        naive = sizes.naive
        self._workload("naive_to_marketo", lambda: naive_to_marketo(system, leads[:naive], "nm"))
        self._workload("naive_to_dynamics", lambda: naive_to_dynamics(system, leads[naive : 2 * naive], "nd"))
        self.say(f"flow step: {sizes.flow_steps} paced calls that create a lead")
        self.extra["flow_step"] = flow_step_latency(
            system, sizes.flow_steps, "fs", burst=sizes.flow_step_burst
        )
        settle(system, window=self.window)
        # No backfill runs: the worker's share is all but the flow step's (shared/backfill/share.py).
        share = live_calls(
            int(WHOLE_API["MARKETO_MAX_CALLS_PER_20S"]),
            int(WHOLE_API["MARKETO_FLOW_STEP_CALLS_PER_20S"]),
            int(WHOLE_API["MARKETO_BACKFILL_CALLS_PER_20S"]),
            reserved=False,
        )
        self.say(
            f"{INSTANCES} instances, one Marketo budget of {share} calls/20 s, {sizes.instances_seconds:g} s"
        )
        self.extra["instances"] = shared_budget(
            system,
            self.workdir,
            processes=INSTANCES,
            seconds=sizes.instances_seconds,
            share=share,
            ids=[p.marketo_id for p in leads],
        )
        settle(system, window=self.window)
        self.say(
            f"operator console: pages over {sizes.console_log_entries:,} sync-log entries "
            f"and {sizes.console_errors:,} errors"
        )
        self.extra["console"] = console_pages.measure(
            system,
            log_entries=sizes.console_log_entries,
            errors=sizes.console_errors,
            password=system.config.operator_password,
        )
        # Last: its held webhooks are released as the system stops, nothing waits for them.
        self.say(f"worker process: memory and CPU profile of {sizes.profile_batch}-notice batches")
        self.extra["worker_process"] = worker_probe(system, leads, sizes.profile_batch, "wp")

    def _steady_campaign(self, pairs: list[Pair]) -> WorkloadResult:
        system, sizes = self.system, self.sizes
        system.register_change_campaign()
        try:
            return steady(
                system,
                pairs,
                "sc",
                rate=sizes.steady_rate,
                seconds=sizes.steady_seconds,
                poll_seconds=SHIPPED_POLL_SECONDS,
            )
        finally:
            system.unregister_change_campaign()

    def _bursts(self, pairs: list[Pair]) -> None:
        system = self.system
        # Marketo -> Dynamics first: its values are taken from the notices when the pairs were
        # not synced in the last minute, which the Dynamics burst on the same pairs would do.
        self._workload("burst_to_dynamics", lambda: burst_to_dynamics(system, pairs, "bd"))
        self._workload("burst_to_marketo", lambda: burst_to_marketo(system, pairs, "bm"))

    def _workload(self, key: str, run: Callable[[], WorkloadResult]) -> None:
        self.say(f"{key.replace('_', ' ')} ...")
        result = run()
        result.extra["worker_marketo_calls_per_20s"] = self.system.deps.marketo.max_calls_per_20s
        self.workloads[key] = result
        batches = result.extra.get("worker_batches", {})
        invocations = (
            f", {batches['invocations']} worker invocations (median {batches['median_notices']} notices)"
            if batches.get("invocations")
            else ""
        )
        self.say(
            f"  {result.changes} changes in {result.seconds:.1f} s = {result.rate:.1f}/s, "
            f"{result.calls.marketo} Marketo and {result.calls.dataverse} Dataverse calls"
            f"{invocations}, {result.changes - result.landed} not landed"
        )
        settle(self.system, window=self.window)


def _ceilings(worker_share: float) -> dict[str, Any]:
    limits = cap.ApiLimits()
    directions = ("to_marketo", "to_dynamics")
    return {
        "limits": asdict(limits),
        "formula": "min(marketo_rate / marketo_calls_per_change, "
        "dataverse_rate / dataverse_calls_per_change), at the minimal calls per change",
        "api": {d: cap.ceiling(limits, d).to_json() for d in directions},
        "api_without_echo": {d: cap.ceiling(limits, d, echo=False).to_json() for d in directions},
        "worker_share_of_marketo_rate": worker_share,
        "at_worker_share": {
            d: cap.ceiling(limits, d, marketo_share=worker_share).to_json() for d in directions
        },
        "daily_changes_at_quota": cap.daily_ceiling(limits),
    }


def _project(workloads: dict[str, dict[str, Any]]) -> None:
    """The **projected** sustained rate (see capacity.sustained) and its fraction of the API
    ceiling, of the ceiling without the echo page, and of the ceiling at the Marketo share the
    sync had: ``projected_*``, beside what the timeline measured (:func:`_measured`).

    The naive baseline gets the benefit of the doubt: its sustained rate is what its calls per
    change allow, as if nothing else (its own speed, a rate window already half used by the
    workload before) ever slowed it down. Ratios against it are therefore conservative."""
    limits = cap.ApiLimits()
    for key, workload in workloads.items():
        share = workload["worker_marketo_calls_per_20s"] / limits.marketo_calls
        measured = float("inf") if key.startswith("naive") else workload["changes_per_second"]
        projected = cap.sustained(
            measured,
            workload["marketo_calls_per_change"],
            workload["dataverse_calls_per_change"],
            marketo_rate=limits.marketo_rate * share,
            dataverse_rate=limits.dataverse_rate,
        )
        workload["projected_changes_per_second"] = projected
        direction = DIRECTIONS.get(key)
        if direction is None:
            continue
        ceilings = {
            "fraction_of_ceiling": cap.ceiling(limits, direction),
            "fraction_of_ceiling_without_echo": cap.ceiling(limits, direction, echo=False),
            "fraction_of_ceiling_at_share": cap.ceiling(limits, direction, marketo_share=share),
        }
        for name, limit in ceilings.items():
            workload[f"projected_{name}"] = projected / limit.changes_per_second


def _measured(workloads: dict[str, dict[str, Any]]) -> None:
    """The sustained rate the timeline measured (bench/timeline.py) and its fraction of the API
    ceiling, for every workload with a timeline; None where the burst was too short."""
    for workload in workloads.values():
        timeline = workload.get("timeline")
        if timeline is None:
            continue
        part = timeline["sustained"]
        workload["sustained_changes_per_second"] = None if part is None else part["changes_per_second"]
        workload["fraction_of_ceiling"] = None if part is None else part["fraction_of_ceiling"]


def _sustained(workload: dict[str, Any]) -> float | None:
    return workload.get("sustained_changes_per_second")


def _ratio_check(
    label: str, ours: dict[str, Any], theirs: dict[str, Any], target: float, whose: str
) -> Check:
    name = f"{label}: ours / {whose} (sustained)"
    mine, other = _sustained(ours), theirs.get("sustained_changes_per_second")
    if whose == "naive":
        other = theirs["projected_changes_per_second"]  # projected, in its favour (see _project)
    if mine is None or other is None:
        return unmeasured(name, target, too_short(), "x")
    return at_least(name, mine / other, target, "x")


def _direction_checks(workloads: dict[str, dict[str, Any]]) -> list[Check]:
    checks: list[Check] = []
    for way, label in LABELS.items():
        burst, naive, peer = (workloads.get(f"{kind}_{way}") for kind in ("burst", "naive", "peer"))
        # Ours, where the ceiling is judged: Marketo's whole rate, SQLite state, the longest burst.
        ours = workloads.get(store_key(f"burst_{way}", "sqlite"))
        for store in STORES:
            on_store = workloads.get(store_key(f"burst_{way}", store))
            if on_store is None:
                continue
            name = f"{label} burst, whole API, {store} state: measured sustained / API ceiling"
            fraction = on_store.get("fraction_of_ceiling")
            checks.append(
                unmeasured(name, 0.9, too_short()) if fraction is None else at_least(name, fraction, 0.9)
            )
        if ours is not None and naive is not None:
            check = _ratio_check(label, ours, naive, 20, "naive")
            ours["speedup_vs_naive"] = check.measured
            checks.append(check)
        if ours is not None and peer is not None:
            check = _ratio_check(label, ours, peer, 1.3, "batching peer")
            ours["speedup_vs_peer"] = check.measured
            checks.append(check)
        for run in (burst, ours):
            if run is None:
                continue
            suffix = ", whole API" if run is ours else ""
            marketo, dataverse = run["marketo_calls_per_change"], run["dataverse_calls_per_change"]
            checks.append(at_most(f"{label} burst{suffix}, Marketo calls/change", marketo, 0.02))
            checks.append(at_most(f"{label} burst{suffix}, Dataverse calls/change", dataverse, 0.01))
    return checks


def _summarise(run: _Run, worker_share: float) -> tuple[dict[str, Any], list[Check]]:
    ceilings = _ceilings(worker_share)
    workloads = {k: w.to_json() for k, w in run.workloads.items()} | run.store_workloads
    _project(workloads)
    _measured(workloads)
    checks = _direction_checks(workloads)
    latency: dict[str, Any] = {}
    if "steady" in workloads:
        latency["D->M webhook (steady)"] = workloads["steady"]["latency"]["to_marketo"]
        latency["M->D poll (steady)"] = workloads["steady"]["latency"]["to_dynamics"]
        p50 = latency["D->M webhook (steady)"]["p50_ms"]
        checks.append(at_most("Dynamics -> Marketo p50", None if p50 is None else p50 / 1000, 2.0, " s"))
    if "steady_campaign" in workloads:
        latency["M->D campaign (steady, poll every 60 s)"] = workloads["steady_campaign"]["latency"][
            "to_dynamics"
        ]
        latency["D->M webhook (steady, campaign on)"] = workloads["steady_campaign"]["latency"]["to_marketo"]
        p50 = latency["M->D campaign (steady, poll every 60 s)"]["p50_ms"]
        checks.append(
            at_most("Marketo -> Dynamics p50 (campaign)", None if p50 is None else p50 / 1000, 2.0, " s")
        )
    instances = run.extra.get("instances")
    if instances:
        checks.append(
            at_most(
                f"{instances['processes']} instances, one budget: 606 answers", instances["answered_606"], 0
            )
        )
        checks.append(
            at_least(
                f"{instances['processes']} instances together / API rate",
                instances["fraction_of_api_rate"],
                0.9,
            )
        )
    flow = run.extra.get("flow_step")
    if flow:
        latency["flow step create (paced)"] = flow["paced"]["webhook_call"]
        if "burst" in flow:
            latency["flow step create (burst)"] = flow["burst"]["webhook_call"]
        checks.append(at_most("flow step create p50", flow["paced"]["webhook_call"]["p50_ms"], 300, " ms"))
    cold = run.extra.get("cold_start")
    if cold:
        checks.append(
            at_most("import function_app (median)", cold["import_function_app_ms_median"], 1000, " ms")
        )
    console = run.extra.get("console")
    if console:
        scale = f"{console['errors']:,} errors, {console['log_entries']:,} log entries"
        for page, times in console["pages"].items():
            checks.append(at_most(f"console: {page} p95 ({scale})", times["p95_ms"], 500, " ms"))
    wrong = workloads.get("collisions", {}).get("winner_rule_violations")
    if wrong is not None:
        checks.append(at_most("collisions won by the wrong side", wrong, 0))
    lost = sum(w["lost"] for k, w in workloads.items() if not k.startswith(BASELINES))
    checks.append(at_most("changes lost (mdsync workloads)", lost, 0))
    results = {
        "ceiling": ceilings,
        "workloads": workloads,
        "latency": latency,
        "capacity": _capacity(workloads),
        "batching_window": projection(workloads),
        **run.extra,
        "targets": [c.to_json() for c in checks],
    }
    return results, checks


def _capacity(workloads: dict[str, Any]) -> dict[str, Any]:
    """The daily model (see capacity.capacity) at several change rates, and the calls per change
    the bench measured, against which the model can be checked."""
    measured = {
        key: {"marketo": w["marketo_calls_per_change"], "dataverse": w["dataverse_calls_per_change"]}
        for key, w in workloads.items()
        if not key.startswith(BASELINES)
    }
    return {
        "deployment": asdict(cap.Deployment()),
        "half_from_each_side": [cap.capacity(n).to_json() for n in CAPACITY_LEVELS],
        "all_from_dynamics": [cap.capacity(n, to_marketo_share=1.0).to_json() for n in CAPACITY_LEVELS],
        "all_from_marketo": [cap.capacity(n, to_marketo_share=0.0).to_json() for n in CAPACITY_LEVELS],
        "quota_allows_changes_per_day": {
            "half_from_each_side": cap.changes_within_quota(0.5),
            "all_from_dynamics": cap.changes_within_quota(1.0),
            "all_from_marketo": cap.changes_within_quota(0.0),
        },
        "measured_calls_per_change": measured,
    }


def _meta(quick: bool, sizes: BenchSizes, system: LocalSystem) -> dict[str, Any]:
    settings = system.deps.settings
    return {
        "quick": quick,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sizes": asdict(sizes),
        "marketo_max_calls_per_20s": settings.marketo_max_calls_per_20s,
        "marketo_flow_step_calls_per_20s": settings.marketo_flow_step_calls_per_20s,
        "marketo_max_concurrency": settings.marketo_max_concurrency,
        "dataverse_max_concurrency": settings.dataverse_max_concurrency,
        "poll": "triggered by the bench: once after the Marketo burst, every "
        f"{BURST_POLL_SECONDS:g} s in collisions, {STEADY_POLL_SECONDS:g} s in the steady load",
        "whole_api_settings": WHOLE_API,
        "window_settled_between_workloads": not quick,
    }


def run_bench(
    quick: bool,
    output: Path,
    console: Console,
    *,
    stores_only: bool = False,
    stores: tuple[str, ...] = STORES,
    charts: Path | None = None,
) -> int:
    """Every workload, then the bursts on each of ``stores`` side by side (``stores_only``: only
    those); the charts of what ran drawn into ``charts``."""
    sizes = QUICK if quick else FULL
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mdsync-bench-") as folder:
        system = LocalSystem(
            HarnessConfig(workdir=Path(folder), stack=documented_limits(), extra_settings=SHIPPED_POLL)
        )
        run = _Run(system, sizes, quick, console, Path(folder))
        meta: dict[str, Any] = {"quick": quick, "stores_only": stores_only, "sizes": asdict(sizes)}
        meta_stores = {"stores": list(stores)}
        # The worker's Marketo client gets what the flow step's reserved share leaves.
        worker_calls = int(WHOLE_API["MARKETO_MAX_CALLS_PER_20S"]) - int(
            WHOLE_API["MARKETO_FLOW_STEP_CALLS_PER_20S"]
        )
        if stores_only:
            system.session.close()  # never started
        else:
            with system:
                meta = _meta(quick, sizes, system)
                worker_calls = system.deps.marketo.max_calls_per_20s
                run.run()
        run.say(f"state stores side by side: {', '.join(stores)}, Marketo's whole rate")
        run.store_workloads = store_bursts(
            stores,
            burst=sizes.store_burst,
            workdir=Path(folder),
            settings={**SHIPPED_POLL, **WHOLE_API},
            window=run.window,
            say=run.say,
            peer_on="sqlite",
        )
    if not stores_only:
        run.say(f"cold start: importing function_app in {sizes.import_runs} fresh interpreters")
        run.extra["cold_start"] = cold_start(sizes.import_runs)
    results, checks = _summarise(run, worker_calls / cap.ApiLimits().marketo_calls)
    meta |= meta_stores
    meta["seconds"] = round(time.monotonic() - started, 1)
    document = {"meta": meta, **results}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print_report(document, checks, console)
    console.print(f"results written to {output} ({meta['seconds']:.0f} s)")
    if charts is not None:
        draw_charts(document, charts, run.say)
    correctness = [c for c in checks if c.name.startswith(("collisions", "changes lost")) and c.met is False]
    return 1 if correctness else 0
