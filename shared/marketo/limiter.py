"""Client-side limits and counters, shared by every thread using one client.

Marketo's limits are per instance and shared by all its integrations (100 calls per rolling
20 s, 10 in flight); a client stays under its own smaller share so that it rarely sees 606/615.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
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


class CallCounter(Mapping[str, int]):
    """Calls sent, by endpoint key (``"GET /rest/v1/leads.json"``), with time spent.

    Identity calls are listed under their endpoint but left out of :attr:`total`, as Marketo
    leaves them out of its limits; ``total`` is the number to divide by synced changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._seconds: defaultdict[str, float] = defaultdict(float)

    def record(self, endpoint: str, seconds: float) -> None:
        with self._lock:
            self._counts[endpoint] += 1
            self._seconds[endpoint] += seconds

    def __getitem__(self, endpoint: str) -> int:
        """0 for an endpoint never called, as with a Counter."""
        with self._lock:
            return self._counts[endpoint]

    def __contains__(self, endpoint: object) -> bool:
        with self._lock:
            return endpoint in self._counts

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._counts))

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(n for key, n in self._counts.items() if key != IDENTITY_ENDPOINT)

    def seconds(self, endpoint: str) -> float:
        with self._lock:
            return self._seconds.get(endpoint, 0.0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._seconds.clear()
