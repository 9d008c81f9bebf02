"""A host killed during a sweep or a poll, and how long change capture then takes to resume.

The run goes in another process (the real ``DynamicsSweep`` or ``MarketoPoller`` on the same
state store, queue and simulators), held up in its first call to the service, and is killed with
SIGKILL while it holds its lease: nothing of it can clean up. The restarted host is this process:
its timer ticks until a run moves the checkpoint again. With ``elsewhere`` the killed run
claims to be on another host instance, so its lease cannot be taken back at once and must
lapse (``shared.capture.lease``: 30 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mdsync.harness import ROOT, LocalSystem

RUNS = {
    "dynamics-sweep": (
        "from shared.capture.dynamics_sweep import DynamicsSweep as Run\n"
        "Run(deps.dataverse, deps.state, deps.queue, deps.mapping).run()\n"
    ),
    "marketo-poll": (
        "from shared.capture.marketo_poll import MarketoPoller as Run\n"
        "Run(deps.marketo, deps.state, deps.queue, deps.mapping).run()\n"
    ),
}
CHECKPOINTS = {"dynamics-sweep": "dynamics-sweep:lead", "marketo-poll": "marketo-poll"}
HUNG_SECONDS = 60.0


def kill_mid_run(system: LocalSystem, name: str, *, elsewhere: bool = False, timeout: float = 60.0) -> None:
    """Start the ``name`` run in another process, hold its first service call, and SIGKILL it
    once it holds its lease and is inside that call. Call it while nothing else talks to that
    service."""
    if name == "dynamics-sweep":
        system.dataverse_admin.slow(HUNG_SECONDS, count=1, path="leads")
    else:
        system.marketo_admin.inject_latency(HUNG_SECONDS * 1000, count=1)
    env = dict(os.environ)
    if elsewhere:
        env["WEBSITE_INSTANCE_ID"] = "another-instance"
    script = "from shared.bootstrap import container\ndeps = container()\n" + RUNS[name]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while not (system.deps.state.get_lease(name) is not None and _held_up(system, name)):
            if process.poll() is not None:
                raise RuntimeError(f"the {name} run ended (code {process.returncode}) before it was killed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {name} run never took its lease")
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)


def _held_up(system: LocalSystem, name: str) -> bool:
    """Whether the run is inside its held call (the latency armed for it was taken)."""
    if name == "dynamics-sweep":
        return not any(rule["kind"] == "latency" for rule in system.dataverse_admin.faults())
    return not system.marketo_admin.faults()["latency"]


def resume_seconds(system: LocalSystem, name: str, *, tick: float = 0.25, within: float = 120.0) -> float:
    """Tick the ``name`` timer (every ``tick`` seconds, as a fast schedule would) until a run
    moves its checkpoint; the seconds that took. TimeoutError after ``within``."""
    state = system.deps.state
    before = state.get_checkpoint(CHECKPOINTS[name])
    started = time.monotonic()
    while True:
        system.sweep() if name == "dynamics-sweep" else system.poll()
        after = state.get_checkpoint(CHECKPOINTS[name])
        if after is not None and (before is None or after.etag != before.etag):
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise TimeoutError(f"capture ({name}) did not resume within {within:.0f} s")
        time.sleep(tick)
