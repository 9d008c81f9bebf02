"""Timer triggers: NCRONTAB schedules, one scheduler thread per function, schedule monitoring.

As in Azure: six-field NCRONTAB (seconds first; five fields are minute-first), UTC; runs of one
function never overlap (a run that is due while the previous one is still going starts when it
ends, with ``past_due=True``); ``run_on_startup`` runs once at start; with schedule monitoring
(``use_monitor``; by default on when the interval is a minute or more) ``Last``/``Next`` are
persisted, and a host that starts after a recorded ``Next`` has passed runs at once with
``past_due=True``. ``@app.retry`` policies are honoured (timers are one of the triggers that
support them). The status lives in ``<state_dir>/timers/<function>.json`` instead of a blob.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.functions.timer import TimerRequest
from croniter import croniter

from mdsync.devhost.discovery import FunctionSpec, RetryPolicy, TimerTrigger
from mdsync.devhost.invoke import invoke
from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SCHEDULE_REASON = "Timer fired at {at}"
MANUAL_REASON = "This function was programmatically called via the host APIs."


def utcnow() -> datetime:
    return datetime.now(UTC)


class NcrontabSchedule:
    """An NCRONTAB expression evaluated in UTC."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ConfigurationError(
                f"schedule '{expression}' is not NCRONTAB: expected 6 fields "
                "(second minute hour day month day-of-week) or 5"
            )
        self.expression = expression
        self._seconds_first = len(fields) == 6
        if not croniter.is_valid(expression, second_at_beginning=self._seconds_first):
            raise ConfigurationError(f"schedule '{expression}' is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``."""
        iterator = croniter(self.expression, moment.astimezone(UTC), second_at_beginning=self._seconds_first)
        result: datetime = iterator.get_next(datetime)
        return result.astimezone(UTC)

    def interval(self) -> timedelta:
        """The gap between two consecutive occurrences (from a fixed reference)."""
        first = self.next_after(datetime(2001, 1, 1, tzinfo=UTC))
        return self.next_after(first) - first


@dataclass(frozen=True)
class ScheduleStatus:
    last: datetime | None
    next: datetime
    last_updated: datetime

    def to_json(self) -> dict[str, str]:
        """The shape the host hands the worker (``ScheduleStatus``)."""
        return {
            "Last": (self.last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": self.next.isoformat(),
            "LastUpdated": self.last_updated.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> ScheduleStatus:
        last = datetime.fromisoformat(data["Last"])
        return cls(
            last=None if last.year == 1 else last,
            next=datetime.fromisoformat(data["Next"]),
            last_updated=datetime.fromisoformat(data["LastUpdated"]),
        )


class MonitorStore:
    """``Last``/``Next`` per timer function, one small JSON file each (written atomically)."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "timers"

    def path(self, function_name: str) -> Path:
        return self.directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", function_name) + ".json")

    def load(self, function_name: str) -> ScheduleStatus | None:
        path = self.path(function_name)
        if not path.is_file():
            return None
        try:
            return ScheduleStatus.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable timer status %s", path)
            return None

    def save(self, function_name: str, status: ScheduleStatus) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(function_name)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status.to_json()), encoding="utf-8")
        os.replace(temporary, path)


def _retry_delay(policy: RetryPolicy, retry: int) -> float:
    if policy.strategy == "exponential_backoff":
        return float(min(policy.maximum_seconds, policy.minimum_seconds * 2 ** (retry - 1)))
    return policy.delay_seconds


class TimerRunner:
    """Runs one timer function on its schedule in its own thread."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        monitor: MonitorStore,
        clock: Clock = utcnow,
        on_invoked: Callable[[], None] = lambda: None,
    ) -> None:
        if not isinstance(spec.trigger, TimerTrigger):
            raise TypeError(f"{spec.name} is not a timer function")
        self.spec = spec
        self.trigger: TimerTrigger = spec.trigger
        self.schedule = NcrontabSchedule(spec.trigger.schedule)
        self.monitored = (
            spec.trigger.use_monitor
            if spec.trigger.use_monitor is not None
            else self.schedule.interval() >= timedelta(minutes=1)
        )
        self._monitor = monitor
        self._clock = clock
        self._on_invoked = on_invoked
        self._lock = threading.Lock()  # one run at a time, scheduled or manual
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"timer-{spec.name}", daemon=True)
        self.next_due: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_now(self, *, past_due: bool = False) -> None:
        """Run once now, after any run in progress; the function's exception propagates."""
        self._run(past_due=past_due, scheduled=None, reason=MANUAL_REASON, swallow=False)

    # --- scheduler thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        self._startup()
        anchor = self._clock()
        while not self._stop.is_set():
            due = self.schedule.next_after(anchor)
            self.next_due = due
            past_due = due <= self._clock()  # the previous run overran this occurrence
            if not past_due and not self._wait_until(due):
                return
            self._run(past_due=past_due, scheduled=due, reason=SCHEDULE_REASON.format(at=due.isoformat()))
            anchor = self._clock() if past_due else due

    def _startup(self) -> None:
        status = self._monitor.load(self.spec.name) if self.monitored else None
        now = self._clock()
        if status is not None and status.next <= now:
            log.info("Timer '%s' is past due (Next was %s)", self.spec.name, status.next.isoformat())
            self._run(past_due=True, scheduled=status.next, reason="IsPastDue")
        elif self.trigger.run_on_startup:
            self._run(past_due=False, scheduled=None, reason="RunOnStartup")

    def _wait_until(self, due: datetime) -> bool:
        """Sleep until ``due``; False if the host is stopping."""
        while True:
            remaining = (due - self._clock()).total_seconds()
            if remaining <= 0:
                return not self._stop.is_set()
            if self._stop.wait(remaining):
                return False

    # --- one run --------------------------------------------------------------------------------

    def _run(self, *, past_due: bool, scheduled: datetime | None, reason: str, swallow: bool = True) -> None:
        with self._lock:
            status = self._monitor.load(self.spec.name) if self.monitored else None
            timer = TimerRequest(
                past_due=past_due,
                schedule_status=status.to_json() if status else None,
                schedule={"AdjustForDST": True},
            )
            try:
                self._call_with_retry(timer, reason)
            except Exception:
                if not swallow:
                    raise
            finally:
                self._on_invoked()
                if self.monitored and scheduled is not None:
                    self._record(scheduled)

    def _record(self, scheduled: datetime) -> None:
        now = self._clock()
        try:
            self._monitor.save(self.spec.name, ScheduleStatus(scheduled, self.schedule.next_after(now), now))
        except OSError:  # the schedule goes on; only past-due detection after a restart suffers
            log.warning("could not record the schedule status of %s", self.spec.name, exc_info=True)

    def _call_with_retry(self, timer: TimerRequest, reason: str) -> Any:
        policy = self.spec.retry
        retry = 0
        while True:
            try:
                return invoke(
                    self.spec,
                    timer,
                    reason=reason,
                    retry_count=retry,
                    max_retry_count=policy.max_retry_count if policy else 0,
                )
            except Exception:
                if policy is None or (0 <= policy.max_retry_count <= retry):
                    raise
                retry += 1
                if self._stop.wait(_retry_delay(policy, retry)):
                    raise
