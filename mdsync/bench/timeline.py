"""A burst's timeline: when every API call was sent and every change landed, and the rate
measured over its sustained part.

mdsync's clients note each request they send (``CallCounter.listen``); the watcher notes when
each change landed. From these the bench measures the **sustained** rate instead of projecting
it from calls per change: a burst that starts with an idle Marketo budget can run above any
sustained rate in its first rate window, and its last changes land in a tail where the backlog
runs dry. So the sustained part is the whole rate windows (20 s, counted from the clock's start)
after the first one and before the window in which the last change landed:

    sustained part = [W, k W)   with k = floor(last landing / W), W = 20 s

and the sustained rate is the changes landed within it divided by its length. A burst that
leaves fewer than ``MIN_WINDOWS`` whole windows there has no sustained part (``None``): its
rate is not measured, and the bench says so rather than fall back to a projection.

Times are seconds since the clock's start (``t0``; in the JSON also as epoch seconds). A call's
time is when it was sent (its end minus its duration), which is when Marketo counts it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from mdsync.harness import LocalSystem
from shared.calls import CallCounter

WINDOW_SECONDS = 20.0
MARKETO_LIMIT_PER_WINDOW = 100
# Whole windows the sustained part must hold for its rate to count as measured: with fewer, a
# burst is too short to tell a sustained rate from the budget it started with.
MIN_WINDOWS = 2


@dataclass(frozen=True)
class Sustained:
    start: float
    end: float
    changes_per_second: float
    fraction_of_ceiling: float
    marketo_calls_per_window: list[int]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "changes_per_second": round(self.changes_per_second, 1),
            "fraction_of_ceiling": round(self.fraction_of_ceiling, 4),
            "marketo_calls_per_window": self.marketo_calls_per_window,
        }


def per_second(times: Sequence[float]) -> list[int]:
    """Counts per second since t0: entry ``i`` counts the times in ``[i, i + 1)``."""
    if not times:
        return []
    counts = [0] * (math.floor(max(times)) + 1)
    for t in times:
        if t >= 0:
            counts[math.floor(t)] += 1
    return counts


def per_window(times: Sequence[float], start: float, end: float, window: float = WINDOW_SECONDS) -> list[int]:
    """Counts in each whole window of ``window`` seconds from ``start`` to ``end``."""
    windows = round((end - start) / window)
    counts = [0] * windows
    for t in times:
        i = math.floor((t - start) / window)
        if 0 <= i < windows:
            counts[i] += 1
    return counts


def sustained(
    landed: Sequence[float],
    marketo_calls: Sequence[float],
    ceiling: float,
    *,
    window: float = WINDOW_SECONDS,
    min_windows: int = MIN_WINDOWS,
) -> Sustained | None:
    """The rate measured over the sustained part (module doc), or None when the burst leaves
    fewer than ``min_windows`` whole windows between its first window and its tail."""
    if not landed:
        return None
    last_whole = math.floor(max(landed) / window)
    if last_whole - 1 < min_windows:
        return None
    start, end = window, last_whole * window
    count = sum(1 for t in landed if start <= t < end)
    rate = count / (end - start)
    return Sustained(start, end, rate, rate / ceiling, per_window(marketo_calls, start, end, window))


def too_short(window: float = WINDOW_SECONDS, min_windows: int = MIN_WINDOWS) -> str:
    """What the bench says where a burst has no sustained part."""
    return f"not measured (burst shorter than {min_windows + 1} windows of {window:g} s)"


class CallTimes:
    """When each request counted by a :class:`CallCounter` was sent (time.monotonic), while in
    the ``with`` block; endpoints the counter leaves out of its total (Marketo's identity call,
    outside its limits) are left out here too."""

    def __init__(self, counter: CallCounter) -> None:
        self._counter = counter
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._stop: Callable[[], None] | None = None

    def __enter__(self) -> CallTimes:
        self._stop = self._counter.listen(self._note)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stop is not None:
            self._stop()

    def _note(self, endpoint: str, seconds: float) -> None:
        if endpoint in self._counter.uncounted:
            return
        sent = time.monotonic() - seconds
        with self._lock:
            self._times.append(sent)

    def since(self, t0: float) -> list[float]:
        """Seconds since ``t0`` (time.monotonic), sorted, rounded to the millisecond."""
        with self._lock:
            return sorted(round(t - t0, 3) for t in self._times)


class Timeline:
    """``with Timeline(system) as timeline:`` around a burst, then :meth:`to_json` with its
    clock start and the landing times the watcher noted."""

    def __init__(self, system: LocalSystem) -> None:
        self._marketo = CallTimes(system.deps.marketo.calls)
        self._dataverse = CallTimes(system.deps.dataverse.calls)
        self._client_limit = system.deps.marketo.max_calls_per_20s

    def __enter__(self) -> Timeline:
        self._marketo.__enter__()
        self._dataverse.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._dataverse.__exit__(kind, exc, tb)
        self._marketo.__exit__(kind, exc, tb)

    def to_json(self, t0: float, landed: Sequence[float], ceiling: float) -> dict[str, Any]:
        """``t0`` and ``landed`` in time.monotonic; ``ceiling``: the direction's API ceiling in
        changes a second (capacity.ceiling), the denominator of the sustained fraction."""
        marketo = self._marketo.since(t0)
        since = sorted(t - t0 for t in landed)
        part = sustained(since, marketo, ceiling)
        return {
            "t0": round(time.time() - (time.monotonic() - t0), 3),
            "marketo_call_times": marketo,
            "dataverse_call_times": self._dataverse.since(t0),
            "landed_per_second": per_second(since),
            "window_seconds": WINDOW_SECONDS,
            "marketo_limit_per_window": MARKETO_LIMIT_PER_WINDOW,
            "client_limit_per_window": self._client_limit,
            "sustained": None if part is None else part.to_json(),
        }
