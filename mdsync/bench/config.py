"""Workload sizes of one bench run: the full run and the quick one (``make bench QUICK=1``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSizes:
    # Linked pairs seeded before the workloads (leads, contacts).
    leads: int
    contacts: int
    # One burst of this many changes in each direction at the shipped Marketo share.
    burst: int
    # The bursts on each state store with Marketo's whole rate, where the ceiling is judged, and
    # the batching peer's: long enough (full run) for the rate windows to bind.
    store_burst: int
    # Steady mixed load: changes per second (both directions and new leads) for this long.
    steady_rate: float
    steady_seconds: float
    # Collision-heavy load: pairs edited on both sides at once, half leads, half contacts.
    collisions: int
    # Naive baseline: changes per direction (it is slow by construction; its sustained rate is
    # projected from its calls per change, see capacity.sustained).
    naive: int
    # Flow-step calls that create a lead: paced within the step's reserved Marketo share, then
    # back to back (0: no burst).
    flow_steps: int
    flow_step_burst: int
    # Fresh interpreters timed importing function_app.
    import_runs: int
    # Notices in the batch whose memory and CPU profile are measured in a subprocess.
    profile_batch: int
    # How long the instances sharing one Marketo budget read as fast as it lets them.
    instances_seconds: float
    # Changes arriving evenly at a million a day, window off and on (mdsync/bench/window.py).
    even_seconds: float = 180.0
    # The operator console's pages are timed over this much state.
    console_log_entries: int = 1_000_000
    console_errors: int = 100_000


FULL = BenchSizes(
    leads=10_000,
    contacts=1_000,
    burst=10_000,
    store_burst=100_000,
    steady_rate=20.0,
    steady_seconds=60.0,
    collisions=2_000,
    naive=100,
    flow_steps=30,
    flow_step_burst=20,
    import_runs=5,
    profile_batch=1_000,
    instances_seconds=90.0,
)

QUICK = BenchSizes(
    leads=2_000,
    contacts=300,
    burst=2_000,
    store_burst=2_000,
    steady_rate=20.0,
    steady_seconds=15.0,
    collisions=300,
    naive=10,
    flow_steps=6,
    flow_step_burst=0,
    import_runs=3,
    profile_batch=300,
    instances_seconds=45.0,
    console_log_entries=100_000,
    console_errors=20_000,
    even_seconds=30.0,
)

# How often the bench triggers the Marketo poller (the harness runs timers only when told to).
# In Azure the default schedule is every 60 s; latency from Marketo scales with this interval.
BURST_POLL_SECONDS = 1.0
STEADY_POLL_SECONDS = 2.0
# The shipped schedule (MARKETO_POLL_SCHEDULE, every minute): with the change campaign, the
# poller is only the safety net.
SHIPPED_POLL_SECONDS = 60.0
# The Marketo rate window: the bench waits for it to empty between workloads, so that each
# workload starts with the whole budget, as a fresh burst would.
MARKETO_WINDOW_SECONDS = 20.0
