"""Client-side limits and counters, shared by every thread using one client.

Marketo's limits are per instance and shared by all its integrations (100 calls per rolling
20 s, 10 in flight); a client stays under its own smaller share so that it rarely sees 606/615.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

IDENTITY_ENDPOINT = "GET /identity/oauth/token"


class CallLimiter:
    """At most ``max_calls`` per rolling ``window`` seconds and ``max_concurrency`` in flight."""

    def __init__(
        self,
        max_calls: int,
        max_concurrency: int,
        *,
        window: float = 20.0,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        if max_calls < 1 or max_concurrency < 1:
            raise ValueError("limits must be at least 1")
        self.max_calls = max_calls
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            self._take_rate_slot()
            yield

    def _take_rate_slot(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.max_calls:
                    self._stamps.append(now)
                    return
                wait = self._stamps[0] + self.window - now
            # Sleep outside the lock so other threads can still count and release.
            self._sleep(max(wait, 0.001))
