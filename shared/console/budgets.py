"""The API budgets: Marketo calls today against the daily quota and in the current 20-second
window; Dataverse requests in the current service-protection window.

- Marketo counts calls per day in US Central time (the quota resets at midnight there). mdsync
  counts its own: the worker's and the poller's calls, tallied per hour (the flow step's few and
  other integrations' are not; Marketo's Admin > Web Services shows the instance's total).
- The 20-second window is the worker's own limiter's count when it last finished a batch.
- Dataverse returns ``x-ms-ratelimit-burst-remaining-xrm-requests`` (requests left of 6,000 per
  300 s for this user on the server that answered) and ``...-time-remaining-...`` (execution
  time left) on every answer; the worker notes the last ones it saw per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared import pacing
from shared.console import records
from shared.console import tallies as t
from shared.pacing import PacingPolicy, Spend
from shared.ports import StateStore, Tally

MARKETO_DAY = ZoneInfo("America/Chicago")
DATAVERSE_WINDOW_REQUESTS = 6000
DATAVERSE_WINDOW_SECONDS = 300


def marketo_day_start(now: datetime) -> datetime:
    """Midnight US Central of ``now``'s Marketo day, in UTC (a whole UTC hour)."""
    local = now.astimezone(MARKETO_DAY)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def marketo_day_end(now: datetime) -> datetime:
    """The next midnight US Central after ``now``, in UTC (23 or 25 hours after the day's
    start when the clocks change)."""
    local = now.astimezone(MARKETO_DAY)
    tomorrow = local.date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=MARKETO_DAY).astimezone(UTC)


def marketo_calls_today(tallies: list[Tally], now: datetime) -> int:
    """mdsync's Marketo calls counted since the quota's day began (the worker's and capture's)."""
    day = marketo_day_start(now)
    return sum(x.count for x in tallies if x.name == t.MARKETO_CALLS and x.hour >= day)


@dataclass(frozen=True)
class Budgets:
    marketo_calls_today: int
    marketo_daily_quota: int
    marketo_day_started: datetime
    marketo_window_calls: int | None
    marketo_window_limit: int
    marketo_window_at: datetime | None
    dataverse_requests_remaining: int | None
    dataverse_time_remaining_ms: float | None
    dataverse_seen_at: datetime | None
    dataverse_calls_last_hour: int
    # The batching window a small worker batch would wait for now (0: none); None when it is off.
    batching_window_seconds: float | None = None

    @property
    def marketo_quota_used(self) -> float:
        return self.marketo_calls_today / self.marketo_daily_quota if self.marketo_daily_quota else 0.0

    @property
    def dataverse_requests_in_window(self) -> int | None:
        if self.dataverse_requests_remaining is None:
            return None
        return max(0, DATAVERSE_WINDOW_REQUESTS - self.dataverse_requests_remaining)


def note_batch(state: StateStore, *, marketo_window: int, marketo_limit: int, dataverse: Any) -> None:
    """What the worker saw of the budgets at the end of a batch (``dataverse``: RateHeaders)."""
    now = datetime.now(UTC).isoformat()
    seen_at = getattr(dataverse, "seen_at", None)

    def change(current: dict[str, Any]) -> dict[str, Any]:
        current["marketo_window"] = {"calls": marketo_window, "limit": marketo_limit, "at": now}
        if seen_at is not None:
            current["dataverse"] = {
                "requests_remaining": dataverse.requests_remaining,
                "time_remaining_ms": dataverse.time_remaining,
                "at": datetime.fromtimestamp(seen_at, UTC).isoformat(),
            }
        return current

    records.note(state, records.BUDGETS, change)


def read_budgets(
    state: StateStore,
    tallies: list[Tally],
    now: datetime,
    *,
    daily_quota: int,
    window_limit: int,
    policy: PacingPolicy | None = None,
) -> Budgets:
    day = marketo_day_start(now)
    hour_ago = now - timedelta(hours=1)
    marketo_today = marketo_calls_today(tallies, now)
    dataverse_hour = sum(
        x.count
        for x in tallies
        if x.name == t.DATAVERSE_CALLS and x.hour >= hour_ago.replace(minute=0, second=0, microsecond=0)
    )
    seen = records.read(state, records.BUDGETS)
    window = seen.get("marketo_window") or {}
    dataverse = seen.get("dataverse") or {}
    remaining = dataverse.get("requests_remaining")
    spent = dataverse.get("time_remaining_ms")
    return Budgets(
        marketo_calls_today=marketo_today,
        marketo_daily_quota=daily_quota,
        marketo_day_started=day,
        marketo_window_calls=window.get("calls") if isinstance(window.get("calls"), int) else None,
        marketo_window_limit=int(window.get("limit") or window_limit),
        marketo_window_at=records.moment(window.get("at")),
        dataverse_requests_remaining=remaining if isinstance(remaining, int) else None,
        dataverse_time_remaining_ms=float(spent) if isinstance(spent, int | float) else None,
        dataverse_seen_at=records.moment(dataverse.get("at")),
        dataverse_calls_last_hour=dataverse_hour,
        batching_window_seconds=None
        if policy is None
        else pacing.window(policy, marketo_spend(marketo_today, now)),
    )


def marketo_spend(calls: float, now: datetime) -> Spend:
    """``calls`` made so far in ``now``'s Marketo day, as the batching window reads them."""
    start = marketo_day_start(now)
    return Spend(calls, (now - start).total_seconds(), (marketo_day_end(now) - start).total_seconds())
