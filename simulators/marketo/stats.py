"""What the simulator saw: calls by endpoint, answers by error code, recent requests."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SeenRequest:
    endpoint: str
    http_method: str
    path: str
    method_override: bool
    code: str | None  # Marketo error code, None on success
    status: int


class CallStats:
    def __init__(self, keep: int = 2_000) -> None:
        self.by_endpoint: Counter[str] = Counter()
        self.by_code: Counter[str] = Counter()
        self.recent: deque[SeenRequest] = deque(maxlen=keep)
        self.method_overrides = 0

    def record(self, seen: SeenRequest) -> None:
        self.by_endpoint[seen.endpoint] += 1
        if seen.code:
            self.by_code[seen.code] += 1
        if seen.method_override:
            self.method_overrides += 1
        self.recent.append(seen)

    @property
    def total(self) -> int:
        """REST calls received (identity calls are listed per endpoint but not in the total,
        as Marketo does not count them against the limits)."""
        return sum(n for key, n in self.by_endpoint.items() if not key.endswith("/oauth/token"))

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "byEndpoint": dict(self.by_endpoint),
            "byErrorCode": dict(self.by_code),
            "methodOverrides": self.method_overrides,
        }

    def reset(self) -> None:
        self.by_endpoint.clear()
        self.by_code.clear()
        self.recent.clear()
        self.method_overrides = 0
