"""Change capture as the console sees it: when the poller and the sweep last ran, how far behind
each is, and whether the Dataverse webhooks arrive.

The timers note each run (one state write per run). The webhook notes itself at most once every
10 seconds per process (``WebhookBeat``): a state write per webhook call would cost more than
the call. So "last webhook" is exact for the first one after a quiet spell and at most 10 s old
otherwise, and the hourly count leaves out the webhooks of the last 10 s before a process's last
note (they are counted with the next webhook that process takes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.console import records
from shared.console import tallies as t
from shared.errors import MdsyncError
from shared.ports import OperationsStore, StateStore

log = logging.getLogger(__name__)

POLL = "marketo-poll"
SWEEP = "dynamics-sweep"
WEBHOOK = "dynamics-webhook"
SWEEP_TABLES = ("lead", "contact")


def record_run(
    state: StateStore, name: str, *, notices: int, drained: bool = True, at: datetime | None = None
) -> None:
    """A capture run finished: ``drained`` False when it stopped with changes still to read."""
    moment = (at or datetime.now(UTC)).isoformat()

    def change(current: dict[str, Any]) -> dict[str, Any]:
        current.update({"last_run": moment, "notices": notices, "drained": drained})
        if drained:
            current["caught_up_at"] = moment
        return current

    records.note(state, records.CAPTURE_PREFIX + name, change)


def after_run(
    state: StateStore,
    operations: OperationsStore,
    name: str,
    *,
    notices: int,
    drained: bool = True,
    marketo_calls: int = 0,
    dataverse_calls: int = 0,
) -> None:
    """A capture run's figures: when it ran, and the API calls it made (tallied per hour)."""
    record_run(state, name, notices=notices, drained=drained)
    counter = t.TallyCounter()
    counter.add(t.NONE, t.NONE, t.MARKETO_CALLS, marketo_calls)
    counter.add(t.NONE, t.NONE, t.DATAVERSE_CALLS, dataverse_calls)
    try:
        operations.add_tallies(counter.tallies())
    except MdsyncError as exc:
        log.info("capture tallies not written: %s", exc)


class WebhookBeat:
    """Counts webhook notices in memory and writes them at most every ``every`` seconds."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._flushed_at: float | None = None

    def seen(self, entity: str, state: StateStore, operations: OperationsStore) -> None:
        with self._lock:
            self._pending[entity] = self._pending.get(entity, 0) + 1
            now = self._clock()
            if self._flushed_at is not None and now - self._flushed_at < self.every:
                return
            pending, self._pending, self._flushed_at = self._pending, {}, now
        counter = t.TallyCounter()
        for name, n in pending.items():
            counter.add(name, t.TO_MARKETO, t.WEBHOOK, n)
        try:
            operations.add_tallies(counter.tallies())
        except MdsyncError as exc:
            log.info("webhook tallies not written: %s", exc)
        stamp = datetime.now(UTC).isoformat()
        records.note(state, records.CAPTURE_PREFIX + WEBHOOK, lambda c: {**c, "last_seen": stamp})


@dataclass(frozen=True)
class CaptureFigure:
    """One capture path: when it last ran (or a webhook arrived) and how far behind it is."""

    name: str
    label: str
    last_run: datetime | None
    behind_seconds: float | None
    detail: str


def _age(now: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def read_capture(state: StateStore, now: datetime, webhooks_last_hour: int) -> list[CaptureFigure]:
    poll = records.read(state, records.CAPTURE_PREFIX + POLL)
    caught_up = records.moment(poll.get("caught_up_at"))
    poll_detail = (
        f"{poll.get('notices', 0)} notices in the last run"
        + ("" if poll.get("drained", True) else "; more changes waiting (page budget spent)")
        if poll
        else "has not run yet"
    )
    sweep = records.read(state, records.CAPTURE_PREFIX + SWEEP)
    swept = [_sweep_mark(state, table) for table in SWEEP_TABLES]
    oldest_mark = min((m for m in swept if m is not None), default=None)
    webhook = records.read(state, records.CAPTURE_PREFIX + WEBHOOK)
    last_hook = records.moment(webhook.get("last_seen"))
    return [
        CaptureFigure(
            POLL, "Marketo poll", records.moment(poll.get("last_run")), _age(now, caught_up), poll_detail
        ),
        CaptureFigure(
            SWEEP,
            "Dynamics sweep",
            records.moment(sweep.get("last_run")),
            _age(now, oldest_mark),
            f"{sweep.get('notices', 0)} notices in the last run" if sweep else "has not run yet",
        ),
        CaptureFigure(
            WEBHOOK,
            "Dataverse webhooks",
            last_hook,
            None,
            f"{webhooks_last_hour} in the last hour (counted every 10 s)"
            if last_hook
            else "none received yet",
        ),
    ]


def _sweep_mark(state: StateStore, table: str) -> datetime | None:
    """Changes in ``table`` up to this moment are read (the sweep's own checkpoint)."""
    data = records.read(state, f"dynamics-sweep:{table}")
    return records.moment(data.get("since")) or records.moment(data.get("at"))
