"""Service protection limits (per user) and injected faults.

Defaults are the documented ones: 6000 requests per 300-second sliding window, 52 concurrent
requests, 1,200,000 ms combined execution time per window. A tripped limit answers 429 with
``Retry-After`` in whole seconds and the documented code and message.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from simulators.dataverse.faults import (
    CONCURRENCY_LIMIT,
    EXECUTION_TIME_LIMIT,
    INVALID_ARGUMENT,
    REQUESTS_LIMIT,
    UNEXPECTED,
    DataverseFault,
)


@dataclass
class ServiceLimits:
    requests: int = 6000
    window_seconds: float = 300.0
    concurrent: int = 52
    execution_ms: int | None = 1_200_000

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def requests_fault(limits: ServiceLimits, retry_after: int) -> DataverseFault:
    return DataverseFault(
        429,
        REQUESTS_LIMIT,
        f"Number of requests exceeded the limit of {limits.requests} over time window of "
        f"{int(limits.window_seconds)} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


class Limiter:
    def __init__(self, limits: ServiceLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.lock = threading.Lock()
        self.requests: dict[str, deque[float]] = defaultdict(deque)
        self.execution: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self.in_flight: dict[str, int] = defaultdict(int)

    def admit(self, user: str) -> None:
        """Count a request for ``user`` or raise the 429 fault of the limit it trips."""
        with self.lock:
            now = self.clock()
            window = self.limits.window_seconds
            stamps = self.requests[user]
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if self.in_flight[user] >= self.limits.concurrent:
                raise DataverseFault(
                    429,
                    CONCURRENCY_LIMIT,
                    f"Number of concurrent requests exceeded the limit of {self.limits.concurrent}.",
                    headers={"Retry-After": "1"},
                )
            if len(stamps) >= self.limits.requests:
                retry = max(1, math.ceil(stamps[0] + window - now))
                raise requests_fault(self.limits, retry)
            spent = self._spent(user, now)
            if self.limits.execution_ms is not None and spent > self.limits.execution_ms:
                first = self.execution[user][0][0]
                retry = max(1, math.ceil(first + window - now))
                raise DataverseFault(
                    429,
                    EXECUTION_TIME_LIMIT,
                    "Combined execution time of incoming requests exceeded limit of "
                    f"{self.limits.execution_ms:,} milliseconds over time window of "
                    f"{int(window)} seconds. Decrease number of concurrent requests or reduce the "
                    "duration of requests and try again later.",
                    headers={"Retry-After": str(retry)},
                )
            stamps.append(now)
            self.in_flight[user] += 1

    def _spent(self, user: str, now: float) -> float:
        entries = self.execution[user]
        while entries and entries[0][0] <= now - self.limits.window_seconds:
            entries.popleft()
        return sum(ms for _, ms in entries)

    def release(self, user: str, elapsed_ms: float) -> None:
        with self.lock:
            self.in_flight[user] = max(0, self.in_flight[user] - 1)
            self.execution[user].append((self.clock(), elapsed_ms))

    def remaining(self, user: str) -> int:
        with self.lock:
            return max(0, self.limits.requests - len(self.requests[user]))

    def configure(self, **changes: Any) -> ServiceLimits:
        with self.lock:
            for name, value in changes.items():
                if not hasattr(self.limits, name):
                    raise ValueError(f"unknown limit '{name}'")
                setattr(self.limits, name, value)
            return self.limits

    def reset(self, limits: ServiceLimits) -> None:
        with self.lock:
            self.limits = limits
            self.requests.clear()
            self.execution.clear()
            self.in_flight.clear()


@dataclass
class FaultRule:
    """``throttle``: 429 with Retry-After; ``error``: an HTTP status (5xx); ``latency``: delay;
    ``refuse``: the whole request is refused (``status``, default 400) when its path, query or
    body holds ``contains``, a stand-in for whatever in a record makes Dataverse refuse a call.

    ``count`` requests are affected (None: until cleared); ``path`` limits the rule to request
    paths containing that text (e.g. ``leads``).
    """

    kind: str
    count: int | None = 1
    status: int = 503
    retry_after: int = 1
    seconds: float = 0.0
    path: str = ""
    contains: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        kind = str(data.get("kind"))
        if kind not in ("throttle", "error", "latency", "refuse"):
            raise ValueError("kind must be throttle, error, latency or refuse")
        contains = str(data.get("contains") or "")
        if kind == "refuse" and not contains:
            raise ValueError("a refuse rule needs 'contains': the text that makes a request refused")
        count = data.get("count", 1)
        return cls(
            kind=kind,
            count=None if count is None else int(count),
            status=int(data.get("status", 400 if kind == "refuse" else 503)),
            retry_after=int(data.get("retry_after", 1)),
            seconds=float(data.get("seconds", 0.0)),
            path=str(data.get("path") or ""),
            contains=contains,
        )


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        with self.lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def take(self, path: str, content: str = "") -> tuple[float, DataverseFault | None]:
        """The delay to apply and the fault to answer (if any) for this request (``content``:
        its path, query and body as text)."""
        delay = 0.0
        fault: DataverseFault | None = None
        with self.lock:
            for rule in list(self.rules):
                if rule.path and rule.path not in path:
                    continue
                if rule.kind == "refuse" and rule.contains not in content:
                    continue
                if rule.kind == "latency":
                    delay += rule.seconds
                elif fault is None:
                    fault = _fault_for(rule)
                else:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self.rules.remove(rule)
        return delay, fault

    def to_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(r) for r in self.rules]


def _fault_for(rule: FaultRule) -> DataverseFault:
    if rule.kind == "refuse":
        return DataverseFault(
            rule.status, INVALID_ARGUMENT, f"The request was refused for its content: '{rule.contains}'."
        )
    if rule.kind == "throttle":
        return DataverseFault(
            429,
            REQUESTS_LIMIT,
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            headers={"Retry-After": str(rule.retry_after)},
        )
    messages = {
        500: "An unexpected error occurred.",
        502: "Bad Gateway",
        503: "The service is temporarily unavailable. Please try again later.",
        504: "Gateway Timeout",
    }
    return DataverseFault(
        rule.status, UNEXPECTED, messages.get(rule.status, f"Simulated HTTP {rule.status}.")
    )
