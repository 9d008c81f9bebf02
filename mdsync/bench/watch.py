"""When did a change land? A thread that watches the simulators' in-process state.

Every expected value is registered with the moment its edit was made; the watcher checks the
outstanding ones against the target simulator's state on a short period and notes the first
moment each holds the value. Reading in-process state costs no API call, so watching never
changes what is measured. Resolution is the watch period (default 20 ms), longer while so many
values are outstanding that checking them would take more than a tenth of the time.

Landing times for a burst's timeline (:meth:`Watcher.landed_at`) are narrowed further: a value
landed after the previous check and before this one, and within the second its record says it
was last modified (both simulators keep whole seconds, as the real services do): the midpoint of
what both allow. With 100,000 values outstanding the period grows to seconds, and noting a
landing at the check would shift it late by up to that much.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mdsync.harness import LocalSystem

CHECK_SHARE_INVERSE = 10


@dataclass(frozen=True)
class Target:
    """A value expected on one side: Marketo (``entity`` "person") or a Dynamics table."""

    side: str  # "marketo" or "dynamics"
    entity: str  # "person", "lead" or "contact"
    record_id: str
    field: str
    value: Any


@dataclass
class _Pending:
    target: Target
    since: float
    label: str


class Watcher:
    def __init__(self, system: LocalSystem, *, period: float = 0.02) -> None:
        self._marketo = system.stack.marketo.state
        self._dataverse = system.stack.dataverse.state
        self._period = period
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Pending] = {}
        self._landed: dict[str, list[float]] = {}
        self._landed_at: dict[str, list[float]] = {}
        self._last = 0.0
        self._checked = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def expect(self, target: Target, since: float, label: str) -> None:
        """``target`` should appear; its latency counts from ``since`` (time.monotonic)."""
        key = (target.side, target.entity, target.record_id, target.field)
        with self._lock:
            self._pending[key] = _Pending(target, since, label)

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)

    def latencies(self, label: str) -> list[float]:
        with self._lock:
            return list(self._landed.get(label, []))

    def landed_at(self, label: str) -> list[float]:
        """When each value landed (time.monotonic), in the order noted."""
        with self._lock:
            return list(self._landed_at.get(label, []))

    def wait(self, timeout: float, *, stall: float = 120.0) -> bool:
        """Until nothing is outstanding; False after ``timeout``, or after ``stall`` seconds in
        which nothing landed (something is broken: waiting longer would not help)."""
        started = time.monotonic()
        while self.outstanding():
            now = time.monotonic()
            if now - started > timeout or now - max(started, self.last_landing()) > stall:
                return False
            time.sleep(self._period)
        return True

    def last_landing(self) -> float:
        """When the latest value landed (time.monotonic)."""
        with self._lock:
            return self._last

    def _run(self) -> None:
        pause = self._period
        while not self._stop.wait(pause):
            started = time.thread_time()
            self.check()
            # Checking 10,000 outstanding values takes a good part of a period and holds the
            # simulators' locks: watching must not slow down what it watches, so it spends at
            # most a tenth of the CPU checking (its own CPU time: waiting for a busy
            # simulator's lock costs nothing). The last values land with few outstanding,
            # where the period is back to its resolution.
            pause = max(self._period, CHECK_SHARE_INVERSE * (time.thread_time() - started))

    def check(self) -> None:
        with self._lock:
            pending = list(self._pending.items())
        if not pending:
            return
        now, previous = time.monotonic(), self._checked
        epoch_offset = time.time() - now
        landed = self._landed_now(pending)
        scanned = time.monotonic()  # a value may land during the scan, before it is looked at
        with self._lock:
            for key, item, modified in landed:
                if self._pending.get(key) is item:
                    del self._pending[key]
                    self._landed.setdefault(item.label, []).append(now - item.since)
                    after = max(previous, item.since)
                    stamp = None if modified is None else modified - epoch_offset
                    moment = _narrowed(after, scanned, stamp)
                    self._landed_at.setdefault(item.label, []).append(moment)
                    self._last = now
        self._checked = now

    def _landed_now(
        self, pending: list[tuple[Hashable, _Pending]]
    ) -> list[tuple[Hashable, _Pending, float | None]]:
        """The pending values that landed, each with its record's last modification (epoch s)."""
        # One lock acquisition per simulator and check, not one per target.
        marketo = [(k, p) for k, p in pending if p.target.side == "marketo"]
        dynamics = [(k, p) for k, p in pending if p.target.side != "marketo"]
        found: list[tuple[Hashable, _Pending, Any]] = []
        with self._marketo.lock:
            for key, item in marketo:
                person = self._marketo.persons.get(int(item.target.record_id))
                if person is not None and person.get(item.target.field) == item.target.value:
                    found.append((key, item, person.get("updatedAt")))
        with self._dataverse.store.lock:
            for key, item in dynamics:
                row = self._dataverse.store.get(item.target.entity, item.target.record_id.lower())
                if row is not None and row.get(item.target.field) == item.target.value:
                    found.append((key, item, row.get("modifiedon")))
        return [(key, item, _epoch(stamp)) for key, item, stamp in found]


def _epoch(stamp: Any) -> float | None:
    """A record's modification stamp (Dataverse: a datetime; Marketo: ISO text), epoch seconds."""
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _narrowed(after: float, before: float, modified: float | None) -> float:
    """When a value landed: after ``after`` (the previous check, or its edit), by ``before`` (this
    check), within the whole second from ``modified`` if that says anything; the midpoint of what
    these allow."""
    low, high = after, before
    if modified is not None and modified < high and modified + 1 > low:
        low, high = max(low, modified), min(high, modified + 1)
    return (low + high) / 2
