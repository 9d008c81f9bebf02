"""The doctor's checks when the app starts: once per process, in the background, one log line each.

A first deployment's faults (a refused credential, a missing column or key, an unregistered
webhook, a field the mapping names that does not exist) should show in the log at start, named
with their fix, before any notice meets them. The first invocation of a process starts
:class:`shared.doctor.Doctor` on a thread of its own, so no invocation waits for it (the flow
step has 30 seconds in all); each failed check is one WARNING line, then one summary line.
``MDSYNC_STARTUP_CHECKS=false`` turns this off (the local harness does, to keep the simulators'
call counts to what the tests cause).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.bootstrap import Container

log = logging.getLogger("mdsync.startup")

_started = False
_lock = threading.Lock()


def check_in_background(deps: Container) -> threading.Thread | None:
    """Start the checks if this process has not yet; the thread, or None."""
    global _started  # noqa: PLW0603 - once per process is the point
    with _lock:
        if _started or not deps.settings.startup_checks:
            return None
        _started = True
    thread = threading.Thread(target=run_checks, args=(deps,), name="mdsync-startup-checks", daemon=True)
    thread.start()
    return thread


def run_checks(deps: Container) -> int:
    """Log every failed check and a summary; the number of failures."""
    failed = 0
    try:
        for check in deps.doctor().run():
            if not check.ok:
                failed += 1
                log.warning("start-up check: %s", check)
    except Exception as exc:  # a diagnosis must never take the app down
        log.warning("start-up checks stopped: %s: %s", type(exc).__name__, exc)
        return failed + 1
    if failed:
        log.warning("start-up checks: %d problem(s); `mdsync doctor` prints them with their fixes", failed)
    else:
        log.info("start-up checks: everything mdsync needs is in place")
    return failed


def forget() -> None:
    """As if the process were new (tests, and the local host between runs)."""
    global _started  # noqa: PLW0603
    with _lock:
        _started = False
