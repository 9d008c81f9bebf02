"""Pausing the sync without losing a notice.

While paused, change capture keeps queuing (webhooks answer 202, polls and sweeps advance), and
the worker holds what it receives: each batch is put back on the queue as scheduled messages,
visible ``hold_seconds`` later, and only then completed. So:

- nothing is lost: the held copies are queued before the batch completes; if the queue refuses
  them, the worker raises and Service Bus redelivers the batch;
- no delivery count is burnt: a batch is completed, not abandoned (abandoning would dead-letter
  every message after ``maxDeliveryCount`` pauses' worth of deliveries);
- each held copy has a message id of its own (the notice's id + ``-h`` + a token), or the queue's
  duplicate detection would drop it as a repeat of the message it replaces.

The cost: every notice waiting during a pause is received and re-sent once per ``hold_seconds``
(MDSYNC_PAUSE_HOLD_SECONDS, default 60 s): three Service Bus operations per notice per minute,
and after ``resume`` a held notice waits out the rest of its hold (at most ``hold_seconds``).
A long pause over a large backlog is better done by stopping the function app (the messages then
wait untouched), which the console's page and docs/operations.md say.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.cached import CachedRead
from shared.console import records
from shared.notices import Notice
from shared.ports import NoticeQueue, StateStore

_HELD = re.compile(r"-h[0-9a-f]{12}$")


def held_copy(notice: Notice) -> Notice:
    """The notice to queue while paused: the same change under a message id of its own."""
    base = _HELD.sub("", notice.dedup_id)
    return Notice.model_validate({**notice.model_dump(), "dedup_id": f"{base}-h{uuid.uuid4().hex[:12]}"})


def is_held(message_id: str) -> bool:
    return _HELD.search(message_id) is not None


@dataclass(frozen=True)
class PauseState:
    paused: bool
    by: str = ""
    at: datetime | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "by": self.by,
            "at": self.at.isoformat() if self.at else None,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PauseState:
        at = data.get("at")
        return cls(
            paused=bool(data.get("paused")),
            by=str(data.get("by") or ""),
            at=datetime.fromisoformat(at) if isinstance(at, str) else None,
            reason=str(data.get("reason") or ""),
        )


class PauseSwitch:
    """The pause flag (a state-store record) and the worker's hold. The flag is read at most once
    per ``cache_seconds`` per process: one read per batch or less."""

    def __init__(
        self,
        state: StateStore,
        *,
        hold_seconds: float = 60.0,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.hold_seconds = hold_seconds
        self._flag = CachedRead(
            lambda: PauseState.from_dict(records.read(state, records.PAUSE)), cache_seconds, clock=clock
        )

    def current(self, *, fresh: bool = False) -> PauseState:
        return self._flag.get(fresh=fresh)

    def set(self, paused: bool, *, by: str, reason: str = "") -> PauseState:
        wanted = PauseState(paused, by, datetime.now(UTC), reason)
        records.update(self.state, records.PAUSE, lambda _: wanted.as_dict())
        self._flag.put(wanted)
        return wanted

    def hold(self, notices: Sequence[Notice], queue: NoticeQueue) -> int:
        """Queue held copies of ``notices`` for ``hold_seconds`` from now. Raises when the queue
        cannot take them (the caller must not complete the batch then)."""
        copies = [held_copy(n) for n in notices]
        if copies:
            queue.schedule(copies, datetime.now(UTC) + timedelta(seconds=self.hold_seconds))
        return len(copies)
