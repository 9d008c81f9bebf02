"""API calls made during a workload (as mdsync's clients counted them, retries included; the
Marketo simulator adds the error codes it answered, e.g. 606), and the helpers that drive the
harness's timers and let it settle between workloads."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mdsync.harness import LocalSystem


@dataclass(frozen=True)
class Calls:
    marketo: int
    dataverse: int
    marketo_by_endpoint: dict[str, int] = field(default_factory=dict)
    dataverse_by_endpoint: dict[str, int] = field(default_factory=dict)
    marketo_errors: dict[str, int] = field(default_factory=dict)
    # Requests to Table Storage (state, console records, the shared Marketo budget), when the
    # state store is the Table one; none with SQLite.
    state_by_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> int:
        return sum(self.state_by_endpoint.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "marketo": self.marketo,
            "dataverse": self.dataverse,
            "marketo_by_endpoint": self.marketo_by_endpoint,
            "dataverse_by_endpoint": self.dataverse_by_endpoint,
            "marketo_error_codes_seen_by_simulator": self.marketo_errors,
            "table_storage": self.state,
            "table_storage_by_endpoint": self.state_by_endpoint,
        }


def _snapshot(system: LocalSystem) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    deps = system.deps
    marketo = Counter(deps.marketo.calls.snapshot())
    dataverse = Counter(deps.dataverse.calls.snapshot())
    errors = Counter(system.stack.marketo.state.calls()["byErrorCode"])
    requests = getattr(deps.state, "requests", None)  # only the Table store counts its own
    state = Counter(requests.snapshot() if requests is not None else {})
    return marketo, dataverse, errors, state


class Meter:
    """``with Meter(system) as meter: ...`` then ``meter.calls``."""

    IDENTITY = "GET /identity/oauth/token"

    def __init__(self, system: LocalSystem) -> None:
        self.system = system
        self.calls = Calls(0, 0)

    def __enter__(self) -> Meter:
        self._before = _snapshot(self.system)
        return self

    def __exit__(self, *exc: object) -> None:
        after = _snapshot(self.system)
        marketo, dataverse, errors, state = (a - b for a, b in zip(after, self._before, strict=True))
        self.calls = Calls(
            marketo=sum(n for k, n in marketo.items() if k != self.IDENTITY),
            dataverse=sum(dataverse.values()),
            marketo_by_endpoint=dict(marketo),
            dataverse_by_endpoint=dict(dataverse),
            marketo_errors=dict(errors),
            state_by_endpoint=dict(state),
        )


class PollDriver:
    """Triggers the Marketo poller every ``interval`` seconds, as its timer would."""

    def __init__(self, system: LocalSystem, interval: float) -> None:
        self.system = system
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-poller", daemon=True)

    def __enter__(self) -> PollDriver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.system.poll()
            self.runs += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))


# LocalSystem.wait_idle hands its whole timeout to the Dataverse admin drain call, whose HTTP
# client gives up after 30 s: longer waits are made of shorter ones.
_IDLE_STEP = 20.0


def idle(system: LocalSystem, timeout: float) -> None:
    """Webhooks delivered and the queue empty, for waits of any length."""
    deadline = time.monotonic() + timeout
    while True:
        step = min(_IDLE_STEP, max(0.1, deadline - time.monotonic()))
        try:
            system.wait_idle(timeout=step)
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise
        else:
            return


def sync_quietly(system: LocalSystem, timeout: float = 300.0) -> None:
    """What LocalSystem.sync does (webhooks, a poll, queue empty), for waits of any length."""
    idle(system, timeout)
    system.poll()
    idle(system, timeout)


def settle(system: LocalSystem, *, window: float | None, timeout: float = 300.0) -> None:
    """Let the sync go quiet (webhooks delivered, a poll, queue empty); with ``window``, also
    wait until Marketo's rate window is empty, so that the next workload starts fresh."""
    sync_quietly(system, timeout)
    fresh_window(system, window=window)


def fresh_window(system: LocalSystem, *, window: float | None) -> None:
    """With ``window``, until Marketo's rate window is empty (no more than ``window`` + 5 s)."""
    if window is None:
        return
    marketo = system.stack.marketo.state
    deadline = time.monotonic() + window + 5
    while marketo.calls()["callsInWindow"] and time.monotonic() < deadline:
        time.sleep(0.25)


class BatchSizes(logging.Handler):
    """Notices per worker invocation, read from the function's own "synced ..." log line (the
    host hands the worker whatever the queue holds, up to maxMessageBatchSize)."""

    LOGGER = "functions.sync_worker"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sizes: list[int] = []
        self._logger = logging.getLogger(self.LOGGER)
        self._level = self._logger.level

    def __enter__(self) -> BatchSizes:
        self._logger.addHandler(self)
        if not self._logger.isEnabledFor(logging.INFO):
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if str(record.msg).startswith("synced") and len(args) >= 2 and isinstance(args[1], int):
            self.sizes.append(args[1])

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.sizes)
        if not ordered:
            return {"invocations": 0}
        return {
            "invocations": len(ordered),
            "median_notices": ordered[len(ordered) // 2],
            "max_notices": ordered[-1],
            "single_digit_batches": sum(1 for n in ordered if n < 10),
        }
