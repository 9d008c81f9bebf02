"""Client-side limits and counters, shared by every thread using one client.

Marketo's limits are per instance and shared by all its integrations (100 calls per rolling
20 s, 10 in flight); a client stays under its own smaller share so that it rarely sees 606/615.

A share is a promise nobody else checks: other integrations, and other Function instances of
mdsync each with their own client, spend the same 100 calls. So a 606 (the instance's rate
exceeded) halves this client's rate, and it grows back by a tenth of its share per quiet window:
clients that do not know of each other settle, between them, near what Marketo allows, the way
TCP senders share a link.

A share may move while the client runs (``max_calls`` given as a function): the live sync's
share shrinks while an initial sync holds its own (``shared/backfill/share.py``). The limiter
asks for it before each call, outside its lock (the answer may come from the state store).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.errors import RateLimitedError

IDENTITY_ENDPOINT = "GET /identity/oauth/token"


class RateShareSpentError(RateLimitedError):
    """This client's own share of the rate is spent for longer than the caller may wait. Nothing
    was sent, and retrying at once cannot help: ``retry_after`` says when a slot frees."""


class CallLimiter:
    """At most ``max_calls`` per rolling ``window`` seconds and ``max_concurrency`` in flight.
    ``max_calls`` is a number, or a function that says the share now (read before every call)."""

    def __init__(
        self,
        max_calls: int | Callable[[], int],
        max_concurrency: int,
        *,
        window: float = 20.0,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._share = max_calls if callable(max_calls) else (lambda: max_calls)
        if self._share() < 1 or max_concurrency < 1:
            raise ValueError("limits must be at least 1")
        self.window = window
        # After a 606: the rate it was cut to, and when (None: never cut).
        self._cut_to = self._share()
        self._cut_at: float | None = None
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)

    @property
    def max_calls(self) -> int:
        """This client's share of the instance's rate now (at least 1)."""
        return max(1, self._share())

    def allowed(self) -> int:
        """Calls this client may make per window now (``max_calls`` unless Marketo said 606)."""
        share = self.max_calls
        with self._lock:
            return self._allowed(self._clock(), share)

    def in_window(self) -> int:
        """Calls this client made in the rolling window that ends now (the console's figure)."""
        with self._lock:
            now = self._clock()
            return sum(1 for stamp in self._stamps if stamp > now - self.window)

    def saw_rate_limit(self) -> int | None:
        """Marketo answered 606: halve the rate. The 606s of the same burst (within a quarter of
        a window of the cut) cut once; returns the new rate, or None for those."""
        share = self.max_calls
        with self._lock:
            now = self._clock()
            if self._cut_at is not None and now - self._cut_at < self.window / 4:
                return None
            self._cut_to = max(1, self._allowed(now, share) // 2)
            self._cut_at = now
            return self._cut_to

    def _allowed(self, now: float, share: int) -> int:
        if self._cut_at is None:
            return share
        windows = int((now - self._cut_at) // self.window)
        return min(share, self._cut_to + windows * max(1, share // 10))

    @contextmanager
    def slot(self, max_wait: float | None = None) -> Iterator[None]:
        """A call may start. With ``max_wait``, a caller with a deadline (the flow step) waits at
        most that long for the rate, then gets RateShareSpentError: like a lock taken with a
        timeout, it still slows its callers down to the rate, but answers in time."""
        with self._slots:
            self._take_rate_slot(None if max_wait is None else self._clock() + max_wait)
            yield

    def _take_rate_slot(self, give_up_at: float | None) -> None:
        while True:
            share = self.max_calls
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                allowed = self._allowed(now, share)
                if len(self._stamps) < allowed:
                    self._stamps.append(now)
                    return
                wait = self._stamps[len(self._stamps) - allowed] + self.window - now
            if give_up_at is not None:
                if now >= give_up_at:
                    raise RateShareSpentError(
                        f"this client's share of the rate ({allowed} calls per {self.window:.0f} s) "
                        f"is spent for the next {wait:.0f} s",
                        service="marketo",
                        retry_after=wait,
                    )
                wait = min(wait, give_up_at - now)
            # Sleep outside the lock so other threads can still count and release.
            self._sleep(max(wait, 0.001))
