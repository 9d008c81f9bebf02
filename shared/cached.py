"""A state-store read reused for a few seconds: what a hot path asks often and may see late.

The worker asks, per batch or per Marketo call, whether the sync is paused, what the day's
Marketo spend is, whether an initial sync holds its share. Each answer is one record (or a few
tallies) that changes rarely, and each caller says how late it may see a change: that, not the
call rate, sets the reads per process. The read runs outside the lock, so a slow store never
holds up callers that still have an answer; two callers that find it stale may both read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class CachedRead(Generic[T]):
    """``read()`` at most once per ``seconds`` (by ``clock``); ``get(fresh=True)`` reads now."""

    def __init__(
        self, read: Callable[[], T], seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read = read
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._held: tuple[float, T] | None = None

    def get(self, *, fresh: bool = False) -> T:
        now = self._clock()
        with self._lock:
            held = self._held
        if not fresh and held is not None and now - held[0] < self.seconds:
            return held[1]
        value = self._read()
        self.put(value, at=now)
        return value

    def put(self, value: T, *, at: float | None = None) -> None:
        """What the caller itself just wrote: its next ``get`` need not read it back."""
        with self._lock:
            self._held = (self._clock() if at is None else at, value)
