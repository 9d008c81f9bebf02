"""API calls counted by endpoint: the numerator of "API calls per synced change"."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress


class CallCounter(Mapping[str, int]):
    """Requests sent, by endpoint key (``"PATCH leads()"``, ``"GET /rest/v1/leads.json"``), with
    the time spent in each; retries count too. Endpoints in ``uncounted`` (Marketo's identity
    call, which Marketo leaves out of its limits) are listed but left out of :attr:`total`."""

    def __init__(self, uncounted: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._seconds: defaultdict[str, float] = defaultdict(float)
        self._uncounted = frozenset(uncounted)
        self._thread = threading.local()
        # Replaced, never mutated, so record() reads it without the lock.
        self._listeners: tuple[Callable[[str, float], None], ...] = ()

    def record(self, endpoint: str, seconds: float) -> None:
        with self._lock:
            self._counts[endpoint] += 1
            self._seconds[endpoint] += seconds
        if endpoint not in self._uncounted:
            self._thread.total = self.on_this_thread + 1
        for listener in self._listeners:
            listener(endpoint, seconds)

    def listen(self, listener: Callable[[str, float], None]) -> Callable[[], None]:
        """``listener(endpoint, seconds)`` after every request recorded from now on (the bench's
        timeline notes when each was sent); the returned function stops it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def stop() -> None:
            with self._lock:
                self._listeners = tuple(f for f in self._listeners if f is not listener)

        return stop

    @property
    def uncounted(self) -> frozenset[str]:
        """Endpoints listed but left out of :attr:`total` (Marketo's identity call)."""
        return self._uncounted

    @property
    def on_this_thread(self) -> int:
        """What :attr:`total` counts, sent from the calling thread only: the calls of one run
        (a worker batch, a poll) while other threads of the process share the client."""
        return int(getattr(self._thread, "total", 0))

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
            return sum(n for key, n in self._counts.items() if key not in self._uncounted)

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


class RateHeaders:
    """The service-protection headers Dataverse returns on every answer (free to read; it says
    not to drive throttling from them): requests and execution time left in the current window
    for this user on the server that answered, as last seen, with when."""

    BURST = "x-ms-ratelimit-burst-remaining-xrm-requests"
    TIME = "x-ms-ratelimit-time-remaining-xrm-requests"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests_remaining: int | None = None
        self.time_remaining: float | None = None
        self.seen_at: float | None = None

    def observe(self, headers: Mapping[str, str], at: float) -> None:
        burst, spent = headers.get(self.BURST), headers.get(self.TIME)
        if burst is None and spent is None:
            return
        with self._lock:
            if burst is not None and burst.strip().isdigit():
                self.requests_remaining = int(burst)
            if spent is not None:
                with suppress(ValueError):
                    self.time_remaining = float(spent)
            self.seen_at = at
