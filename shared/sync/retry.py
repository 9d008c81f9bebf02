"""Later, or never blindly: rescheduling notices after transient faults, parking the rest.

A transient fault (429, 5xx, timeout, expired token) puts the notice back on the queue as a
scheduled message: after the service's Retry-After when it gave one, else after an exponential
backoff with jitter. Nothing sleeps in the function. After ``max_attempts`` the notice is parked
in the state store, where ``mdsync replay`` finds it. Notices whose sync failed permanently for a
reason that is not the person's data (a permission, a broken request) are parked at once.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import TransientError
from shared.notices import Notice
from shared.ports import Link, NoticeQueue, ParkedNotice, StateStore
from shared.sync.journal import Journal

NO_ONE = Link(0, "-", "")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_seconds: float = 5.0
    max_delay_seconds: float = 900.0

    def delay_for(self, attempt: int, exc: TransientError) -> float:
        """Seconds before ``attempt`` (1 = the first retry)."""
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 1.0), self.max_delay_seconds)
        backoff: float = self.base_delay_seconds * (2.0 ** min(max(attempt - 1, 0), 16))
        return min(backoff, self.max_delay_seconds) * random.uniform(0.8, 1.2)


def _reason(exc: TransientError) -> str:
    return f"{type(exc).__name__}: {exc}"


class Rescheduler:
    def __init__(self, queue: NoticeQueue, state: StateStore, policy: RetryPolicy) -> None:
        self.queue = queue
        self.state = state
        self.policy = policy

    def reschedule(
        self, items: Iterable[tuple[Notice, TransientError, Link | None]], journal: Journal
    ) -> None:
        """Schedule each notice's next attempt, or park it after the last one. Raises when the
        queue cannot take them, so the host abandons the batch and nothing is lost."""
        now = datetime.now(UTC)
        later: dict[datetime, list[Notice]] = {}
        parked: list[tuple[Notice, str, Link | None]] = []
        for notice, exc, who in items:
            attempt = notice.attempt + 1
            if attempt >= self.policy.max_attempts:
                parked.append((notice, f"{_reason(exc)} (after {attempt} attempts)", who))
                continue
            delay = self.policy.delay_for(attempt, exc)
            at = (now + timedelta(seconds=delay)).replace(microsecond=0)
            later.setdefault(at, []).append(notice.retry(attempt))
            journal.note(
                who or NO_ONE,
                "rescheduled",
                f"{_reason(exc)}; attempt {attempt + 1} of {self.policy.max_attempts} in {delay:.0f} s",
            )
        for at, notices in later.items():
            self.queue.schedule(notices, at)
        journal.result.rescheduled += sum(len(n) for n in later.values())
        self.park(parked, journal)

    def park(self, items: Iterable[tuple[Notice, str, Link | None]], journal: Journal) -> None:
        now = datetime.now(UTC)
        parked = []
        for notice, reason, who in items:
            parked.append(ParkedNotice(notice.dedup_id, notice.to_json(), reason, now))
            journal.note(who or NO_ONE, "parked", f"notice {notice.dedup_id} parked: {reason}")
            journal.gave_up(who, notice, reason)
        if parked:
            self.state.park(parked)
        journal.result.parked += len(parked)
