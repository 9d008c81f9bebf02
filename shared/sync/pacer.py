"""The worker's batching window in action: a small batch waits for company when the day's
Marketo spend says so (the rule: ``shared/pacing.py``).

When ``hold_back`` decides a batch waits, it sends the batch's notices back to the queue as
scheduled messages visible at the window's next boundary, marked ``paced``, and the worker does
not process them. The caller then returns normally and the host completes the originals, so:

- nothing is lost: the copies are accepted by the queue before the batch completes; when the
  queue refuses them, this raises, the invocation fails and the host abandons the batch (Service
  Bus redelivers it; the local queue does the same);
- nothing waits forever: a batch holding a ``paced`` notice is processed whatever the spend, and
  every notice deferred into one window comes back at the same boundary, as one batch;
- a batch deferred twice (its invocation failed after the copies were queued) is queued once:
  a copy's message id is the original's plus ``-w``, which duplicate detection drops the second
  time (the local queue does, tested; Service Bus "removes second and further submissions" of a
  MessageId, and whether that covers a scheduled repeat is not confirmed here: if not, the
  notice comes back twice at the boundary, and the duplicate finds nothing to do).

The day's spend is what mdsync already counts: the hourly ``marketo_calls`` tallies (the worker's
and capture's calls, ``shared/console/tallies.py``) since midnight US Central, when Marketo's
quota resets. They are read at most once per ``cache_seconds`` per process; if they cannot be
read the batch is processed (pacing saves quota, it never holds a change back on its own fault).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from shared.cached import CachedRead
from shared.console.budgets import marketo_calls_today, marketo_day_start, marketo_spend
from shared.errors import MdsyncError
from shared.notices import Notice, Source
from shared.pacing import PacingPolicy, Spend, boundary, may_wait, window
from shared.ports import NoticeQueue, OperationsStore

log = logging.getLogger(__name__)


class Pacer:
    def __init__(
        self,
        policy: PacingPolicy,
        operations: OperationsStore,
        queue: NoticeQueue,
        *,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.operations = operations
        self.queue = queue
        self._clock = clock
        self._spend = CachedRead(self._read_spend, cache_seconds, clock=clock)

    def spend(self) -> Spend | None:
        """The day's Marketo spend so far, or None when the tallies cannot be read."""
        return self._spend.get()

    def _read_spend(self) -> Spend | None:
        moment = datetime.fromtimestamp(self._clock(), UTC)
        found: Spend | None
        try:
            calls = marketo_calls_today(self.operations.read_tallies(marketo_day_start(moment)), moment)
        except MdsyncError as exc:
            log.warning("the day's Marketo calls could not be read; batches are not paced: %s", exc)
            found = None
        else:
            found = marketo_spend(calls, moment)
        return found

    def hold_back(self, notices: Sequence[Notice]) -> int:
        """Defer this batch to the batching window's next boundary when it should wait, and say
        how many notices were deferred (0: process it now). Raises when the queue refuses the
        copies: the caller must then not complete the batch."""
        # An operator's re-sync has someone waiting for it.
        waited = any(n.paced or n.source is Source.OPERATOR for n in notices)
        if not may_wait(self.policy, len(notices), waited=waited):
            return 0  # decided without reading the spend
        spend = self.spend()
        if spend is None:
            return 0
        seconds = window(self.policy, spend)
        if not seconds:
            return 0
        at = datetime.fromtimestamp(boundary(self._clock(), seconds), UTC)
        self.queue.schedule([n.paced_copy() for n in notices], at)
        log.info(
            "batch of %d notices waits for the %g s batching window (Marketo calls today %d of %d): until %s",
            len(notices),
            seconds,
            spend.calls,
            self.policy.daily_budget,
            at.isoformat(timespec="seconds"),
        )
        return len(notices)
