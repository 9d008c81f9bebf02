"""A crash during a sweep or a poll does not stall change capture: the process running it is
killed (SIGKILL, mid-run), and the next run after the restart runs at once instead of finding
the dead run's lease held for 15 (sweep) or 5 (poll) minutes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from mdsync.harness import ROOT, LocalSystem

RUN = {
    "dynamics-sweep": (
        "from shared.capture.dynamics_sweep import DynamicsSweep as Run\n"
        "Run(deps.dataverse, deps.state, deps.queue, deps.mapping).run()\n"
    ),
    "marketo-poll": (
        "from shared.capture.marketo_poll import MarketoPoller as Run\n"
        "Run(deps.marketo, deps.state, deps.queue, deps.mapping).run()\n"
    ),
}
CHECKPOINT = {"dynamics-sweep": "dynamics-sweep:lead", "marketo-poll": "marketo-poll"}


def _lease_owner(system: LocalSystem, name: str) -> str | None:
    with sqlite3.connect(system.queue_path.with_suffix(".state.sqlite3")) as db:
        row = db.execute("SELECT owner FROM state_leases WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _killed_mid_run(system: LocalSystem, name: str) -> None:
    """Start the run in another process (its first call to the service hangs), wait until it
    holds its lease, and kill it."""
    script = "from shared.bootstrap import container\ndeps = container()\n" + RUN[name]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 60
        while _lease_owner(system, name) is None:
            assert process.poll() is None, f"the {name} run ended before it was killed"
            assert time.monotonic() < deadline, f"the {name} run never took its lease"
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait(timeout=60)


@pytest.mark.parametrize("name", ["dynamics-sweep", "marketo-poll"])
def test_the_run_after_a_crash_is_not_locked_out(system: LocalSystem, name: str) -> None:
    checkpoint = system.deps.state.get_checkpoint(CHECKPOINT[name])
    assert checkpoint is not None
    if name == "dynamics-sweep":
        system.dataverse_admin.slow(15, count=None)
    else:
        system.marketo_admin.inject_latency(15_000, count=100)
    try:
        _killed_mid_run(system, name)
    finally:
        system.dataverse_admin.clear_faults()
        system.marketo_admin.clear_faults()

    # The restarted host's first run: it takes the dead run's lease and moves the checkpoint.
    system.sweep() if name == "dynamics-sweep" else system.poll()

    after = system.deps.state.get_checkpoint(CHECKPOINT[name])
    assert after is not None
    assert after.etag != checkpoint.etag, f"the {name} run after the crash was locked out"
    assert _lease_owner(system, name) is None
