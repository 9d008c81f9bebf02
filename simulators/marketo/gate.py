"""Admission of REST calls: injected faults, concurrency (615), rate (606), daily quota (607).

Calls answered with a code marked * in the docs (600/601/602/604/605/608/611) are not counted
against the rate window or the quota; every other answered call is, rejections included.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from simulators.marketo.config import Limits
from simulators.marketo.faults import UNCOUNTED_CODES, MarketoFault, fault

CENTRAL = ZoneInfo("America/Chicago")


@dataclass
class _Latency:
    seconds: float
    remaining: int


@dataclass
class _Refusal:
    """Calls whose content holds ``text`` are refused as a whole with ``code`` (None: until
    cleared): a stand-in for whatever in a record makes Marketo refuse a whole call."""

    text: str
    code: str
    remaining: int | None


class Gate:
    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._window: deque[float] = deque()
        self._quota_day: date = self._today()
        self.quota_used = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.peak_in_window = 0
        self._faults: deque[str] = deque()
        self._latency: deque[_Latency] = deque()
        self._refusals: list[_Refusal] = []

    # --- configuration ---------------------------------------------------------------------

    def set_limits(self, **changes: float) -> Limits:
        self.limits = replace(self.limits, **changes)  # type: ignore[arg-type]
        return self.limits

    def inject(self, code: str, count: int) -> None:
        self._faults.extend([code] * count)

    def inject_latency(self, seconds: float, count: int) -> None:
        self._latency.append(_Latency(seconds, count))

    def refuse_content(self, text: str, code: str, count: int | None) -> None:
        self._refusals.append(_Refusal(text, code, count))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._latency.clear()
        self._refusals.clear()

    def armed(self) -> dict[str, object]:
        """The faults still armed (a fault with a count goes once used up)."""
        return {
            "codes": list(self._faults),
            "latency": [{"seconds": f.seconds, "count": f.remaining} for f in self._latency],
            "refusals": [{"text": r.text, "code": r.code, "count": r.remaining} for r in self._refusals],
        }

    def content_refusal(self, content: str) -> MarketoFault | None:
        """The refusal for a call carrying ``content`` (its query and body), if one is armed."""
        for rule in self._refusals:
            if rule.text not in content:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._refusals.remove(rule)
            if rule.code == "1001":
                return MarketoFault(rule.code, f"Invalid value '{rule.text}'")
            return fault(rule.code, **self._limit_values())
        return None

    def set_quota(self, *, daily: int | None = None, used: int | None = None) -> None:
        self._roll_day()
        if daily is not None:
            self.limits = replace(self.limits, daily_quota=daily)
        if used is not None:
            self.quota_used = used

    # --- admission -------------------------------------------------------------------------

    def admit(self) -> None:
        """Let one call in (it is then in flight) or raise the fault that rejects it."""
        injected = self._faults.popleft() if self._faults else None
        if injected is not None:
            self.count(injected)
            raise fault(injected, **self._limit_values())
        rejection = self._rejection()
        self.count(rejection.code if rejection else None)
        if rejection:
            raise rejection
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1

    def latency(self) -> float:
        """Extra seconds the next admitted call is held (a latency spike), usually 0."""
        if not self._latency:
            return 0.0
        spike = self._latency[0]
        spike.remaining -= 1
        if spike.remaining <= 0:
            self._latency.popleft()
        return spike.seconds

    def count(self, code: str | None) -> None:
        if code in UNCOUNTED_CODES:
            return
        self._roll_day()
        self._window.append(self._clock())
        self.peak_in_window = max(self.peak_in_window, self.calls_in_window())
        self.quota_used += 1

    def calls_in_window(self) -> int:
        horizon = self._clock() - self.limits.rate_window_seconds
        while self._window and self._window[0] <= horizon:
            self._window.popleft()
        return len(self._window)

    def _rejection(self) -> MarketoFault | None:
        if self.in_flight >= self.limits.concurrency_limit:
            return fault("615")
        if self.calls_in_window() >= self.limits.rate_limit:
            return fault("606", **self._limit_values())
        self._roll_day()
        if self.quota_used >= self.limits.daily_quota:
            return fault("607")
        return None

    def _limit_values(self) -> dict[str, object]:
        window = self.limits.rate_window_seconds
        return {"limit": self.limits.rate_limit, "window": int(window) if window.is_integer() else window}

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock(), CENTRAL).date()

    def _roll_day(self) -> None:
        today = self._today()
        if today != self._quota_day:
            self._quota_day = today
            self.quota_used = 0

    def reset(self, limits: Limits) -> None:
        self.limits = limits
        self._window.clear()
        self.quota_used = 0
        # in_flight is left alone: calls still running will release their slot.
        self.peak_in_flight = self.in_flight
        self.peak_in_window = 0
        self.clear_faults()
