"""The workloads the bench runs through the local host: bursts, collisions, a steady mix.

Each one edits pairs as users would, lets the real function app sync them, and watches the
target simulator until every value has landed. Throughput counts from the first edit to the
last landing; calls per change count everything mdsync's clients sent from the first edit until
the system is quiet again, echoes of its own writes included (they are part of what a change
costs).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mdsync.bench import capacity as cap
from mdsync.bench.config import SHIPPED_POLL_SECONDS
from mdsync.bench.edits import edit_in_dynamics, edit_in_marketo, edit_one_in_dynamics
from mdsync.bench.meter import BatchSizes, Calls, Meter, PollDriver, idle, sync_quietly
from mdsync.bench.seed import Pair
from mdsync.bench.stats import latency_summary, per
from mdsync.bench.timeline import Timeline
from mdsync.bench.watch import Target, Watcher
from mdsync.harness import LocalSystem

LAND_TIMEOUT = 600.0
# The Dynamics column and Marketo field the bursts write (a string both sides store as is).
TITLE = ("jobtitle", "title")
CITY = ("address1_city", "city")


@dataclass
class WorkloadResult:
    name: str
    changes: int
    seconds: float
    calls: Calls
    landed: int
    latency: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changes": self.changes,
            "landed": self.landed,
            "lost": self.changes - self.landed,
            "seconds": round(self.seconds, 3),
            "changes_per_second": round(self.rate, 1),
            "marketo_calls_per_change": per(self.calls.marketo, self.changes),
            "dataverse_calls_per_change": per(self.calls.dataverse, self.changes),
            "table_storage_requests_per_change": per(self.calls.state, self.changes),
            "calls": self.calls.to_json(),
            "latency": self.latency,
            **self.extra,
        }


def _finish(watcher: Watcher, started: float) -> float:
    watcher.wait(LAND_TIMEOUT)
    return (watcher.last_landing() or time.monotonic()) - started


def _delivered(system: LocalSystem, timeout: float) -> None:
    """Until Dataverse delivered every webhook (the admin call waits 10 s at most per call)."""
    deadline = time.monotonic() + timeout
    while not system.dataverse_admin.wait_for_webhooks(timeout=10.0):
        if time.monotonic() > deadline:
            raise TimeoutError("Dataverse did not deliver its webhooks")


def _instruments(system: LocalSystem) -> tuple[Meter, Watcher, BatchSizes, Timeline]:
    """What a burst measures: calls, landings, worker batches, and the timeline of all three."""
    return Meter(system), Watcher(system, period=0.1), BatchSizes(), Timeline(system)


def timeline_json(timeline: Timeline, started: float, watcher: Watcher, direction: str) -> dict[str, Any]:
    ceiling = cap.ceiling(cap.ApiLimits(), direction).changes_per_second
    return timeline.to_json(started, watcher.landed_at(direction), ceiling)


def burst_to_marketo(system: LocalSystem, pairs: Sequence[Pair], tag: str) -> WorkloadResult:
    """Every pair's lead edited in Dynamics at once, then synced as one backlog.

    The worker is held while Dataverse delivers the webhooks, so the sync starts on a queue of
    every change, as after an outage or a mass update; the clock runs from the moment it may
    start until Marketo holds every value. (Delivered live, the burst is bound by how fast this
    machine's simulator posts webhooks, one at a time, not by the sync: ``arrival_seconds``.)
    The poller runs on its shipped schedule meanwhile, so that the echo pages (the activities of
    mdsync's writes) are read within the clock; the last of them after it, with the rest of the
    echoes, still count in the calls per change."""
    column, field_name = TITLE
    edits = [(p.dynamics_id, {column: f"{tag}-{i}"}) for i, p in enumerate(pairs)]
    meter, watcher, batches, timeline = _instruments(system)
    with meter, watcher, batches, timeline:
        with system.worker_held():
            edited = time.monotonic()
            edit_in_dynamics(system, "lead", edits)
            _delivered(system, LAND_TIMEOUT)
            arrival = time.monotonic() - edited
            started = time.monotonic()
            for i, pair in enumerate(pairs):
                target = Target("marketo", "person", str(pair.marketo_id), field_name, f"{tag}-{i}")
                watcher.expect(target, started, "to_marketo")
        # The poller on its shipped schedule meanwhile: the echo pages of the writes are paid from
        # the same Marketo budget within the clock, as in Azure.
        with PollDriver(system, SHIPPED_POLL_SECONDS):
            seconds = _finish(watcher, started)
        landed = len(watcher.latencies("to_marketo"))
        sync_quietly(system, LAND_TIMEOUT)  # the echoes: activities of our writes, polled
    return WorkloadResult(
        "burst Dynamics -> Marketo",
        len(pairs),
        seconds,
        meter.calls,
        landed,
        {"to_marketo": latency_summary(watcher.latencies("to_marketo"))},
        {
            "arrival_seconds": round(arrival, 3),
            "worker_batches": batches.summary(),
            "timeline": timeline_json(timeline, started, watcher, "to_marketo"),
        },
    )


def poll_until_drained(system: LocalSystem) -> int:
    """Poll runs back to back until one ends before its time budget (Marketo had no more), as
    the timer fires them after a mass update: a run stops at ``MARKETO_POLL_MAX_SECONDS`` with
    its checkpoint, and the next, past due, goes on from there. How many ran."""
    budget = system.deps.settings.marketo_poll_max_seconds
    runs = 0
    while True:
        began = time.monotonic()
        system.poll()
        runs += 1
        if time.monotonic() - began < budget:
            return runs


def burst_to_dynamics(system: LocalSystem, pairs: Sequence[Pair], tag: str) -> WorkloadResult:
    """Every pair's person edited in Marketo at once, then the poll runs the timer would fire
    after a mass update (one, unless the backlog outlasts a run's time budget); the clock runs
    from the first run's start until Dynamics holds every value. Marketo has no echo of
    mdsync's Dataverse writes, so quiet means the webhooks of those writes delivered and the
    queue empty, without another poll run."""
    column, field_name = TITLE
    meter, watcher, batches, timeline = _instruments(system)
    with meter, watcher, batches, timeline:
        edit_in_marketo(system, [(p.marketo_id, {field_name: f"{tag}-{i}"}) for i, p in enumerate(pairs)])
        started = time.monotonic()
        for i, pair in enumerate(pairs):
            target = Target("dynamics", pair.entity, pair.dynamics_id, column, f"{tag}-{i}")
            watcher.expect(target, started, "to_dynamics")
        poll_runs = poll_until_drained(system)
        seconds = _finish(watcher, started)
        landed = len(watcher.latencies("to_dynamics"))
        idle(system, LAND_TIMEOUT)
    return WorkloadResult(
        "burst Marketo -> Dynamics",
        len(pairs),
        seconds,
        meter.calls,
        landed,
        {"to_dynamics": latency_summary(watcher.latencies("to_dynamics"))},
        {
            "poll_runs": poll_runs,
            "worker_batches": batches.summary(),
            "timeline": timeline_json(timeline, started, watcher, "to_dynamics"),
        },
    )


def collisions(
    system: LocalSystem, pairs: Sequence[Pair], tag: str, *, poll_seconds: float
) -> WorkloadResult:
    """The same field changed on both sides of every pair before either change syncs (Dataverse
    webhooks held meanwhile). The rule: Marketo wins for leads, Dynamics for contacts."""
    column, field_name = CITY
    winners = system.deps.mapping
    expected: list[Target] = []
    marketo_edits: list[tuple[int, dict[str, Any]]] = []
    dynamics_edits: dict[str, list[tuple[str, dict[str, Any]]]] = {"lead": [], "contact": []}
    for i, pair in enumerate(pairs):
        in_marketo, in_dynamics = f"{tag}-m{i}", f"{tag}-d{i}"
        marketo_edits.append((pair.marketo_id, {field_name: in_marketo}))
        dynamics_edits[pair.entity].append((pair.dynamics_id, {column: in_dynamics}))
        marketo_wins = winners.entity(pair.entity).collision_winner.value == "marketo"
        if marketo_wins:
            expected.append(Target("dynamics", pair.entity, pair.dynamics_id, column, in_marketo))
        else:
            expected.append(Target("marketo", "person", str(pair.marketo_id), field_name, in_dynamics))
    admin = system.dataverse_admin
    with Meter(system) as meter, Watcher(system, period=0.1) as watcher, BatchSizes() as batches:
        admin.pause_webhooks(True)
        try:
            for entity, edits in dynamics_edits.items():
                edit_in_dynamics(system, entity, edits)
            edit_in_marketo(system, marketo_edits)
        finally:
            admin.pause_webhooks(False)
        started = time.monotonic()
        for target in expected:
            watcher.expect(target, started, "collision")
        with PollDriver(system, poll_seconds):
            seconds = _finish(watcher, started)
        landed = len(watcher.latencies("collision"))
        sync_quietly(system, LAND_TIMEOUT)
    wrong = _collisions_lost(system, pairs, expected)
    return WorkloadResult(
        "collision-heavy",
        len(pairs),
        seconds,
        meter.calls,
        landed,
        {"collision": latency_summary(watcher.latencies("collision"))},
        {
            "winner_rule_violations": wrong,
            "poll_every_seconds": poll_seconds,
            "worker_batches": batches.summary(),
        },
    )


def _collisions_lost(system: LocalSystem, pairs: Sequence[Pair], expected: Sequence[Target]) -> int:
    """Pairs whose two sides do not both hold the winner's value at the end."""
    column, field_name = CITY
    wrong = 0
    marketo, dataverse = system.stack.marketo.state, system.stack.dataverse.state
    for pair, target in zip(pairs, expected, strict=True):
        with marketo.lock:
            person = marketo.persons.get(pair.marketo_id) or {}
        with dataverse.store.lock:
            row = dataverse.store.get(pair.entity, pair.dynamics_id.lower()) or {}
        if not (person.get(field_name) == row.get(column) == target.value):
            wrong += 1
    return wrong


@dataclass
class _Steady:
    system: LocalSystem
    watcher: Watcher
    rng: random.Random
    tag: str
    to_marketo: list[Pair]
    to_dynamics: list[Pair]
    changes: int = 0
    created: list[str] = field(default_factory=list)

    def one(self, i: int) -> None:
        roll = self.rng.random()
        now = time.monotonic()
        value = f"{self.tag}-{i}"
        if roll < 0.45:
            pair = self.to_marketo.pop()
            edit_one_in_dynamics(self.system, pair.entity, pair.dynamics_id, {TITLE[0]: value})
            target = Target("marketo", "person", str(pair.marketo_id), TITLE[1], value)
            self.watcher.expect(target, now, "to_marketo")
        elif roll < 0.90:
            pair = self.to_dynamics.pop()
            edit_in_marketo(self.system, [(pair.marketo_id, {TITLE[1]: value})])
            target = Target("dynamics", pair.entity, pair.dynamics_id, TITLE[0], value)
            self.watcher.expect(target, now, "to_dynamics")
        else:
            email = f"{value}@new.bench.example"
            self.system.dataverse_admin.create_as(
                "Jane Doe",
                "leads",
                {"firstname": "New", "lastname": f"Lead{i}", "emailaddress1": email, "subject": "bench"},
            )
            self.created.append(email)
        self.changes += 1


def steady(
    system: LocalSystem,
    pairs: Sequence[Pair],
    tag: str,
    *,
    rate: float,
    seconds: float,
    poll_seconds: float,
    seed: int = 7,
) -> WorkloadResult:
    """A steady mix at ``rate`` changes a second: 45 % edits in Dynamics, 45 % in Marketo (each
    on its own pair, so none collides), 10 % new leads created in Dynamics. ``pairs`` must hold
    at least ``rate * seconds`` pairs."""
    # Each pair is edited once, on one side: an edit never overtakes another one still in flight.
    pool = list(pairs)
    rng = random.Random(seed)
    rng.shuffle(pool)
    half = len(pool) // 2
    with Meter(system) as meter, Watcher(system) as watcher, BatchSizes() as batches:
        load = _Steady(system, watcher, rng, tag, pool[:half], pool[half:])
        with PollDriver(system, poll_seconds):
            started = time.monotonic()
            i = 0
            while (due := started + i / rate) < started + seconds:
                time.sleep(max(0.0, due - time.monotonic()))
                load.one(i)
                i += 1
            elapsed = _finish(watcher, started)
        sync_quietly(system, LAND_TIMEOUT)
    landed = len(watcher.latencies("to_marketo")) + len(watcher.latencies("to_dynamics"))
    created = _created(system, load.created)
    return WorkloadResult(
        "steady mixed",
        load.changes,
        elapsed,
        meter.calls,
        landed + created,
        {
            "to_marketo": latency_summary(watcher.latencies("to_marketo")),
            "to_dynamics": latency_summary(watcher.latencies("to_dynamics")),
        },
        {
            "offered_rate": rate,
            "poll_every_seconds": poll_seconds,
            "new_leads": len(load.created),
            "worker_batches": batches.summary(),
        },
    )


def _created(system: LocalSystem, emails: Sequence[str]) -> int:
    wanted = set(emails)
    with system.stack.marketo.state.lock:
        return sum(1 for p in system.stack.marketo.state.persons.all() if p.get("email") in wanted)
