"""One Marketo rate budget for every worker instance: a token bucket kept in the state store.

Marketo's limit (100 calls per rolling 20 s) is per instance. Each Function instance's own
``CallLimiter`` keeps it under its share, but N busy instances each spending their share
together exceed it, collide on 606 and only then back off. The bucket is one record in the state
store (a checkpoint, written conditionally on its etag), shared by all of them: a call takes a
token; tokens come back at ``rate`` a second up to ``burst``.

Why it never exceeds the window: in any ``window`` seconds at most ``burst + rate * window``
tokens can be taken, and ``rate`` is chosen so that this is ``calls_per_window``: a burst of 2
leaves ``(calls - 2) / window`` a second, 93 of 95 calls per 20 s sustained. A token is taken
just before its call is sent (never leased ahead), so the calls happen when they are counted.

A conflicting write (another instance took a token meanwhile) reads again; the instances' clocks
are the hosts' wall clocks (NTP-synchronised; a skew of a few ms moves a few ms of tokens).

The share may move (``calls_per_window`` given as a function, asked at every take): the live
sync's shrinks while an initial sync holds its own share (``shared/backfill/share.py``). Burst
and rate follow the share at once and the stored tokens are capped at the new burst, so in any
window that starts after every instance has seen the smaller share, at most the smaller share
is taken (the backfill waits that long before its first call).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.errors import ConflictError
from shared.marketo.limiter import CallLimiter, RateShareSpentError
from shared.ports import RateBudget, StateStore

BURST = 2.0
WINDOW = 20.0
# A store that keeps refusing the conditional write is one taking tokens as fast as it can:
# wait a moment rather than spin.
MAX_ATTEMPTS = 8


class StoredTokenBucket(RateBudget):
    """``calls_per_window`` per ``window`` seconds for everyone using the record ``name``
    (a number, or a function that says the share now)."""

    def __init__(
        self,
        state: StateStore,
        name: str,
        calls_per_window: int | Callable[[], int],
        *,
        window: float = WINDOW,
        burst: float = BURST,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._share = calls_per_window if callable(calls_per_window) else (lambda: calls_per_window)
        if self._share() < 1:
            raise ValueError("calls_per_window must be at least 1")
        self.state = state
        self.name = f"rate-budget:{name}"
        self.window = window
        self.max_burst = burst
        self._clock = clock

    @property
    def calls_per_window(self) -> int:
        return max(1, self._share())

    def burst_and_rate(self) -> tuple[float, float]:
        """The bucket's size and refill (tokens a second) for the share now."""
        return bucket_for(self.calls_per_window, self.window, self.max_burst)

    @property
    def burst(self) -> float:
        return self.burst_and_rate()[0]

    @property
    def rate(self) -> float:
        return self.burst_and_rate()[1]

    def take(self) -> float:
        for _ in range(MAX_ATTEMPTS):
            burst, rate = self.burst_and_rate()
            stored = self.state.get_checkpoint(self.name)
            now = self._clock()
            tokens, at = (burst, now) if stored is None else _load(stored.value)
            tokens = min(burst, tokens + max(0.0, now - at) * rate)
            if tokens < 1.0:
                return (1.0 - tokens) / rate
            try:
                self.state.put_checkpoint(
                    self.name, _dump(tokens - 1.0, now), etag=None if stored is None else stored.etag
                )
            except ConflictError:
                continue  # another instance took one meanwhile: look again
            return 0.0
        return 1.0 / self.rate


def bucket_for(calls_per_window: int, window: float, burst: float = BURST) -> tuple[float, float]:
    """Burst and refill rate so that at most ``burst + rate * window == calls_per_window`` calls
    are taken in any ``window``. A tiny share still gets whole tokens: at least one, refilled at
    least half a call a window."""
    size = max(1.0, min(burst, calls_per_window / 2))
    return size, max(calls_per_window - size, 0.5) / window


def _load(value: str) -> tuple[float, float]:
    data = json.loads(value)
    return float(data["tokens"]), float(data["at"])


def _dump(tokens: float, at: float) -> str:
    return json.dumps({"tokens": round(tokens, 6), "at": at})


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
