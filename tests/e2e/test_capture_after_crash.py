"""A crash during a sweep or a poll does not stall change capture: the process running it is
killed (SIGKILL, mid-run), and the next run after the restart runs at once instead of finding
the dead run's lease held for 15 (sweep) or 5 (poll) minutes."""

from __future__ import annotations

import pytest

from mdsync.chaos.crash import kill_mid_run, resume_seconds
from mdsync.harness import LocalSystem


@pytest.mark.parametrize("name", ["dynamics-sweep", "marketo-poll"])
def test_the_first_run_after_a_crash_is_not_locked_out(system: LocalSystem, name: str) -> None:
    """Issue 12, fault 3: the restarted host could not take the lease back for 15 or 5 minutes."""
    kill_mid_run(system, name)
    assert system.deps.state.get_lease(name) is not None, "the killed run left its lease"

    # The restarted host's first tick takes the dead run's lease back and moves the checkpoint.
    resume_seconds(system, name, within=0)

    assert system.deps.state.get_lease(name) is None
