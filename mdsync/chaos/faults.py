"""Arming the planned faults in the simulators, and the one fault that lives in mdsync's process:
a worker killed after it wrote both systems and before its message was completed.

That crash is made by the state store the worker uses: its ``put_shadows``, which the worker
calls once the target writes are done and before the invocation returns, raises for the next
``count`` calls. The exception leaves the Service Bus-triggered function, so the host abandons
the whole batch and the queue delivers it again: the redelivery must find both sides already
equal and write nothing twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from mdsync.chaos.plan import Fault
from mdsync.harness import LocalSystem
from shared.ports import Shadow, StateStore
from simulators.entra import EntraAdmin


class WorkerCrash(RuntimeError):
    """Injected: the worker process died between the target writes and completing its message."""


class _InjectedCrashInOneLine(logging.Filter):
    """The host logs every failed invocation with its traceback; for an injected crash one line
    says enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], WorkerCrash):
            record.exc_info = None
            record.msg = f"{record.msg} [injected crash]"
        return True


HOST_LOGGER = logging.getLogger("mdsync.devhost")


class CrashAfterWrite:
    def __init__(self, state: StateStore) -> None:
        self._state = state
        self._original = state.put_shadows
        self._lock = threading.Lock()
        self._armed = 0
        self._quiet = _InjectedCrashInOneLine()
        self.crashes = 0

    def __enter__(self) -> CrashAfterWrite:
        # An instance attribute shadows the method for every holder of this store object.
        setattr(self._state, "put_shadows", self._put_shadows)  # noqa: B010
        HOST_LOGGER.addFilter(self._quiet)
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()
        delattr(self._state, "put_shadows")
        HOST_LOGGER.removeFilter(self._quiet)

    def arm(self, count: int) -> None:
        with self._lock:
            self._armed += count

    def disarm(self) -> None:
        with self._lock:
            self._armed = 0

    def _put_shadows(self, shadows: Sequence[Shadow]) -> None:
        with self._lock:
            crash = self._armed > 0
            if crash:
                self._armed -= 1
                self.crashes += 1
        if crash:
            raise WorkerCrash("chaos: worker killed after writing both systems, before completing")
        self._original(shadows)


def arm(system: LocalSystem, fault: Fault, crash: CrashAfterWrite) -> None:
    dataverse, marketo = system.dataverse_admin, system.marketo_admin
    actions: dict[str, Any] = {
        "dataverse_throttle": lambda: dataverse.throttle(fault.count, retry_after=int(fault.value)),
        "dataverse_error": lambda: dataverse.fail(fault.count, status=int(fault.value)),
        "dataverse_latency": lambda: dataverse.slow(fault.value, count=fault.count),
        "marketo_error": lambda: marketo.inject_fault(fault.code, fault.count),
        "marketo_latency": lambda: marketo.inject_latency(fault.value, fault.count),
        "marketo_token_expiry": marketo.expire_tokens,
        "dataverse_token_revoked": lambda: EntraAdmin(
            system.stack.urls["entra"], system.session
        ).revoke_all(),
        "drop_webhooks": lambda: dataverse.drop_webhooks(fault.count),
        "duplicate_webhooks": lambda: dataverse.duplicate_webhooks(fault.count),
        "crash_after_write": lambda: crash.arm(fault.count),
    }
    actions[fault.kind]()


def clear(system: LocalSystem, crash: CrashAfterWrite) -> None:
    """Faults not used up by the round end here: the round converges without them."""
    system.dataverse_admin.clear_faults()
    system.marketo_admin.clear_faults()
    crash.disarm()
