"""When did a change land? A thread that watches the simulators' in-process state.

Every expected value is registered with the moment its edit was made; the watcher checks the
outstanding ones against the target simulator's state on a short period and notes the first
moment each holds the value. Reading in-process state costs no API call, so watching never
changes what is measured. Resolution is the watch period (default 20 ms), longer while checking
would take more than a tenth of the time.

An instrument must not take the CPU of what it measures (the simulators and the sync share this
process), so a check looks only at the records written since the last one (the Dataverse
store's recent writes, Marketo's activity log: every change of a person's value records an
activity) and at the values registered since; not at all 100,000 outstanding values of a
burst. Every ``FULL_CHECK_SECONDS``, and whenever a simulator cannot tell what was written
(its state was reset, or the watcher fell too far behind), it checks every outstanding value.

Landing times for a burst's timeline (:meth:`Watcher.landed_at`) are narrowed further: a value
landed after the previous check and before this one, and within the second its record says it
was last modified (both simulators keep whole seconds, as the real services do): the midpoint of
what both allow. With 100,000 values outstanding the period grows to seconds, and noting a
landing at the check would shift it late by up to that much.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mdsync.harness import LocalSystem

CHECK_SHARE_INVERSE = 10
# The safety net: every outstanding value checked this often, whatever the simulators tell.
FULL_CHECK_SECONDS = 10.0


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


Key = tuple[str, str, str, str]  # (side, entity, record id, field)
Record = tuple[str, str]  # (Dynamics table, id in lower case) or ("person", Marketo id)
Found = list[tuple[Key, _Pending, Any]]


def _record(target: Target) -> Record:
    if target.side == "marketo":
        return ("person", str(int(target.record_id)))
    return (target.entity, target.record_id.lower())


class _MarketoWrites:
    """The persons whose activities were recorded since the last call (None: cannot tell)."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self._log = state.log
        self._seen = len(self._log)

    def since_last(self) -> set[Record] | None:
        log = self._state.log
        if log is not self._log:  # the simulator was reset
            self._log, self._seen = log, len(log)
            return None
        activities = log.since(self._seen)
        self._seen += len(activities)
        return {("person", str(a.lead_id)) for a in activities}


class _DataverseWrites:
    """The rows written since the last call (None: cannot tell)."""

    def __init__(self, state: Any) -> None:
        self._state = state
        self._store = state.store
        self._seen = self._store.writes

    def since_last(self) -> set[Record] | None:
        store = self._state.store
        if store is not self._store:
            self._store, self._seen = store, store.writes
            return None
        written = store.written_since(self._seen)
        self._seen = store.writes
        return None if written is None else set(written)


class Watcher:
    def __init__(self, system: LocalSystem, *, period: float = 0.02) -> None:
        self._marketo = system.stack.marketo.state
        self._dataverse = system.stack.dataverse.state
        self._period = period
        self._lock = threading.Lock()
        self._pending: dict[Key, _Pending] = {}
        # Outstanding keys by the record that holds them, and the ones not checked yet.
        self._by_record: dict[Record, set[Key]] = {}
        self._fresh: set[Key] = set()
        self._landed: dict[str, list[float]] = {}
        self._landed_at: dict[str, list[float]] = {}
        self._last = 0.0
        self._checked = 0.0
        self._full_checked = 0.0
        self._marketo_writes = _MarketoWrites(self._marketo)
        self._dataverse_writes = _DataverseWrites(self._dataverse)
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
            self._by_record.setdefault(_record(target), set()).add(key)
            self._fresh.add(key)

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
            # Checking holds the simulators' locks, and a full check of 100,000 outstanding
            # values takes a good part of a period: watching must not slow down what it watches,
            # so it spends at most a tenth of the CPU checking (its own CPU time: waiting for a
            # busy simulator's lock costs nothing).
            pause = max(self._period, CHECK_SHARE_INVERSE * (time.thread_time() - started))

    def check(self) -> None:
        now, previous = time.monotonic(), self._checked
        full = now - self._full_checked >= FULL_CHECK_SECONDS
        if full:
            self._full_checked = now
        epoch_offset = time.time() - now
        landed = self._landed_now(full=full)
        scanned = time.monotonic()  # a value may land during the scan, before it is looked at
        with self._lock:
            for key, item, modified in landed:
                if self._pending.get(key) is item:
                    self._forget(key, item)
                    self._landed.setdefault(item.label, []).append(now - item.since)
                    after = max(previous, item.since)
                    stamp = None if modified is None else modified - epoch_offset
                    moment = _narrowed(after, scanned, stamp)
                    self._landed_at.setdefault(item.label, []).append(moment)
                    self._last = now
        self._checked = now

    def _forget(self, key: Key, item: _Pending) -> None:
        del self._pending[key]
        record = _record(item.target)
        keys = self._by_record.get(record)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_record[record]

    def _candidates(self, side: str, written: set[Record] | None, full: bool) -> list[tuple[Key, _Pending]]:
        """The outstanding values of ``side`` to look at: all of them on a full check or when
        the simulator cannot tell what was written; else those of the records written and those
        not looked at yet."""
        with self._lock:
            if full or written is None:
                self._fresh -= {k for k in self._fresh if k[0] == side}
                return [(k, p) for k, p in self._pending.items() if p.target.side == side]
            keys = {k for k in self._fresh if k[0] == side}
            self._fresh -= keys
            for record in written:
                keys |= self._by_record.get(record, set())
            return [(k, p) for k in keys if (p := self._pending.get(k)) is not None and p.target.side == side]

    def _landed_now(self, *, full: bool) -> list[tuple[Key, _Pending, float | None]]:
        """The outstanding values that landed, each with its record's last modification (epoch
        s). One lock acquisition per simulator and check, not one per target."""
        found: Found = []
        with self._marketo.lock:
            for key, item in self._candidates("marketo", self._marketo_writes.since_last(), full):
                person = self._marketo.persons.get(int(item.target.record_id))
                if person is not None and person.get(item.target.field) == item.target.value:
                    found.append((key, item, person.get("updatedAt")))
        store = self._dataverse.store
        with store.lock:
            for key, item in self._candidates("dynamics", self._dataverse_writes.since_last(), full):
                row = store.get(item.target.entity, item.target.record_id.lower())
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
