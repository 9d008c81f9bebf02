"""Configuration faults at run time: one log line naming the setting, never a traceback.

A missing secret, a wrong client secret, an unreadable mapping: nothing a retry cures, and the
same for every message until someone fixes a setting. So a function that meets a
:class:`~shared.errors.ConfigurationError` logs it once for its run, as one line that names the
setting (``mdsync doctor`` prints the fix), and answers as its contract says: the HTTP functions
503 with ``Retry-After`` (the caller may try again once the setting is fixed), the timers end
the run without moving a checkpoint, the worker hands its batch back to Service Bus.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import azure.functions as func

from functions._http import error
from shared.bootstrap import container
from shared.console import failures as console_failures
from shared.errors import ConfigurationError

log = logging.getLogger("mdsync.configuration")
RETRY_AFTER_SECONDS = 60


class BatchNotRun(RuntimeError):
    """Raised by the worker so the host abandons the batch; the reason is already logged."""


def log_fault(function: str, exc: ConfigurationError) -> None:
    log.error("%s did not run: mdsync is misconfigured: %s (run `mdsync doctor`)", function, exc.line)
    faults.seen(function, exc)


class _FaultList:
    """Puts configuration faults on the console's error list, once a minute per function and
    setting at most. When the fault is in the state store's own settings there is nowhere to put
    it: the log line above (and `mdsync doctor`) remain."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def seen(self, function: str, exc: ConfigurationError) -> None:
        key = f"{function}|{','.join(exc.settings)}"
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.every) < self.every:
                return
            self._last[key] = now
        try:
            error = console_failures.configuration(function, exc.settings, exc.line, datetime.now(UTC))
            container().operations.record_errors([error])
        except Exception:
            log.debug("configuration fault not listed on the console", exc_info=True)


faults = _FaultList()


def misconfigured(function: str, exc: ConfigurationError) -> func.HttpResponse:
    """The 503 the HTTP functions document for a configuration fault (no secret in it)."""
    log_fault(function, exc)
    named = ", ".join(exc.settings) if exc.settings else "see the function log"
    return error(
        503,
        f"mdsync is misconfigured ({named}); retry once it is fixed",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
