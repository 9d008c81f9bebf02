"""One Marketo rate budget for every worker instance: the rolling window, kept in the state store.

Marketo's limit (100 calls per rolling 20 s) is per instance. Each Function instance's own
``CallLimiter`` keeps it under its share, but N busy instances each spending their share
together exceed it, collide on 606 and only then back off. The window is one record in the state
store (a checkpoint, written conditionally on its etag), shared by all of them: the times of the
calls made in the last ``window`` seconds. A call may start when fewer than the share are in it;
it adds its time.

It is Marketo's own rule, so it allows what Marketo allows and no less: a lone batch's few calls
go at once (a token bucket small enough to keep every window under the share spaced them a third
of a second apart, a second of every small worker batch's latency), and a backlog gets the whole
share of every window. A time is taken just before its call is sent (never leased ahead), so the
calls happen when they are counted; ``margin`` widens the window by what may separate two calls'
sending from their arrival at Marketo (a thread scheduled late, a slower connection), so a call
sent exactly one window after another never lands inside it.

A conflicting write (another instance took a call meanwhile) reads again; the instances' clocks
are the hosts' wall clocks (NTP-synchronised; a skew of a few ms moves a few ms of calls).

The share may move (``calls_per_window`` given as a function, asked at every take): the live
sync's shrinks while an initial sync holds its own share (``shared/backfill/share.py``). A
smaller share counts the calls already in the window, so in any window that starts after every
instance has seen the smaller share, at most the smaller share is taken (the backfill waits that
long before its first call).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.errors import ConflictError
from shared.marketo.limiter import CallLimiter, RateShareSpentError
from shared.ports import Checkpoint, RateBudget, StateStore

WINDOW = 20.0
MARGIN = 0.5
# A store that keeps refusing the conditional write is one taking calls as fast as it can:
# wait a moment rather than spin.
MAX_ATTEMPTS = 8


class StoredCallWindow(RateBudget):
    """``calls_per_window`` per rolling ``window`` seconds for everyone using the record ``name``
    (a number, or a function that says the share now)."""

    def __init__(
        self,
        state: StateStore,
        name: str,
        calls_per_window: int | Callable[[], int],
        *,
        window: float = WINDOW,
        margin: float = MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._share = calls_per_window if callable(calls_per_window) else (lambda: calls_per_window)
        if self._share() < 1:
            raise ValueError("calls_per_window must be at least 1")
        self.state = state
        self.name = f"rate-window:{name}"
        self.window = window
        self.span = window + margin
        self._clock = clock
        self._last: Checkpoint | None = None

    @property
    def calls_per_window(self) -> int:
        return max(1, self._share())

    def take(self) -> float:
        for _ in range(MAX_ATTEMPTS):
            share = self.calls_per_window
            # The record as this instance last wrote it, while no one else has written since (the
            # conditional write says so): one request a call rather than two. A stored record
            # holds every unexpired call of the version it was written over, so a version that
            # says the window is full is right.
            stored = self._last or self.state.get_checkpoint(self.name)
            now = self._clock()
            recent = [t for t in _load(stored.value) if t > now - self.span] if stored else []
            if len(recent) >= share:
                # The calls that must leave the window before one more fits.
                return max(recent[len(recent) - share] + self.span - now, 0.001)
            try:
                self._last = self.state.put_checkpoint(
                    self.name, _dump([*recent, now]), etag=None if stored is None else stored.etag
                )
            except ConflictError:
                self._last = None
                continue  # another instance took a call meanwhile: look again
            return 0.0
        return self.span / self.calls_per_window


def _load(value: str) -> list[float]:
    return sorted(float(t) for t in json.loads(value)["calls"])


def _dump(calls: list[float]) -> str:
    return json.dumps({"calls": [round(t, 4) for t in calls]})


class BudgetedCallLimiter(CallLimiter):
    """The client's own limits (its share, halved on a 606, and its concurrency), and then a
    token of the ``budget`` every instance shares, for each call."""

    def __init__(
        self,
        budget: RateBudget,
        max_calls: int | Callable[[], int],
        max_concurrency: int,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(max_calls, max_concurrency, clock=clock, sleep=sleep)
        self.budget = budget

    @contextmanager
    def slot(self, max_wait: float | None = None) -> Iterator[None]:
        give_up_at = None if max_wait is None else self._clock() + max_wait
        with super().slot(max_wait):
            self._take_budget(give_up_at)
            yield

    def _take_budget(self, give_up_at: float | None) -> None:
        while (wait := self.budget.take()) > 0:
            if give_up_at is not None and self._clock() + wait > give_up_at:
                raise RateShareSpentError(
                    "the Marketo rate shared by mdsync's instances is spent for now",
                    service="marketo",
                    retry_after=wait,
                )
            self._sleep(wait)
