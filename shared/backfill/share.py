"""The initial sync's share of Marketo's rate: reserved only while a backfill job calls Marketo.

Marketo's limit (MARKETO_MAX_CALLS_PER_20S of the instance's 100 calls per rolling 20 s) is split
three ways: the flow step's share, always kept; the backfill's share
(MARKETO_BACKFILL_CALLS_PER_20S), kept only while a job holds it; the live sync (worker, poller,
sweep) gets the rest (:func:`live_calls`). Without a job the live sync has everything but the
flow step's share.

The reservation is one record in the state store, ``backfill/share``: ``{"since", "until"}``
(wall-clock seconds). Only the job's Marketo client writes it (:class:`ShareGate`, its rate
budget, asked before every call), so a unit of work that runs long still holds the share, and a
job that stops calling gives it back by itself:

* the first call of a job (or of a job resumed after its reservation ran out) writes a new
  reservation and waits ``check + window + margin`` seconds before it is sent: every live client
  reads the record at most every ``check`` seconds (:class:`ShareView`), so by then each has seen
  its smaller share, and every 20 s window that holds a backfill call starts after that. Their
  limiters count the calls of the window already made (the per-instance limiter its stamps, the
  shared bucket its tokens capped at the smaller burst), so live + backfill stays within the
  limit even when the job starts while the worker is mid-window;
* a reservation lasts ``hold`` seconds (120) and is extended by the next call once less than
  half of it is left; a call is sent only while at least ``check + window + margin`` of it is
  left, so the live sync, taking its share back when ``until`` passes, never shares a window with
  a backfill call;
* a job that ends (done, previewed, failed, cancelled) releases it (:meth:`ShareGate.release`):
  ``until`` becomes one window and a check after now, so the live share comes back within about
  25 s; a job that stops without ending (a ``mdsync backfill`` stopped with Ctrl-C, a killed
  runner, a paused tenant: nobody advances it) gives it back when ``until`` passes, at most
  ``hold`` seconds after its last call.

Clocks are the hosts' wall clocks (NTP-synchronised, as for the shared rolling window); ``margin``
(1 s) covers the time a read of the record takes and a small skew.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.cached import CachedRead
from shared.errors import ConflictError
from shared.ports import RateBudget, StateStore

RESERVATION = "backfill/share"
WINDOW = 20.0  # Marketo's rolling window
HOLD = 120.0
MARGIN = 1.0
CHECK_SECONDS = 5.0  # how stale a live client's view of the reservation may be (the default)


def live_calls(total: int, flow_step: int, backfill: int, *, reserved: bool) -> int:
    """The live sync's calls per window: the instance's limit less the flow step's share, and
    less the backfill's while a job holds it. The settings keep it at least 1."""
    return total - flow_step - (backfill if reserved else 0)


@dataclass(frozen=True)
class Reservation:
    since: float
    until: float

    def held(self, at: float) -> bool:
        return at < self.until

    def dump(self) -> str:
        return json.dumps({"since": self.since, "until": self.until})

    @staticmethod
    def load(value: str) -> Reservation:
        data = json.loads(value)
        return Reservation(float(data["since"]), float(data["until"]))


class ShareView:
    """The live side: whether a backfill holds its share now, the record read at most every
    ``check_seconds`` (one point read per instance per check, whatever the call rate)."""

    def __init__(
        self,
        state: StateStore,
        *,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.check_seconds = check_seconds
        self._clock = clock
        self._reservation = CachedRead(self._read, check_seconds, clock=clock)

    def _read(self) -> Reservation | None:
        stored = self.state.get_checkpoint(RESERVATION)
        return Reservation.load(stored.value) if stored is not None else None

    def reserved(self) -> bool:
        reservation = self._reservation.get()
        return reservation is not None and reservation.held(self._clock())

    def share(self, total: int, flow_step: int, backfill: int) -> Callable[[], int]:
        """The live sync's share now, as a function its limiter asks before each call."""
        return lambda: live_calls(total, flow_step, backfill, reserved=self.reserved())


class ShareGate(RateBudget):
    """The backfill side: its Marketo client's budget. A call may go (0.0) once the reservation
    is seen by every live client and will last past the call's window; otherwise the seconds to
    wait, the reservation written or extended meanwhile."""

    def __init__(
        self,
        state: StateStore,
        *,
        check_seconds: float = CHECK_SECONDS,
        window: float = WINDOW,
        hold: float = HOLD,
        grace: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.window = window
        # How long a reservation must be known before a call, and must still last after it
        # (``grace`` shorter only where nothing else spends the rate: the simulators).
        self.grace = check_seconds + window + MARGIN if grace is None else grace
        self.hold = max(hold, 2 * (check_seconds + window + MARGIN))
        self._clock = clock

    def take(self) -> float:
        stored = self.state.get_checkpoint(RESERVATION)
        now = self._clock()
        current = Reservation.load(stored.value) if stored is not None else None
        if current is None or not current.held(now + self.grace):
            # None, or running out before a call now would leave its window: a new reservation
            # (a lapsed one may already have been given back to the live sync).
            current = Reservation(now, now + self.hold)
        elif current.until - now < self.hold / 2:
            current = Reservation(current.since, now + self.hold)
        else:
            return max(0.0, current.since + self.grace - now)
        if not self._put(current, stored.etag if stored is not None else None):
            return MARGIN  # another runner wrote it meanwhile: look again
        return max(0.0, current.since + self.grace - now)

    def release(self) -> None:
        """The job has ended: no call after now. The live sync gets its share back once the
        last call's window has passed."""
        stored = self.state.get_checkpoint(RESERVATION)
        if stored is None:
            return
        current = Reservation.load(stored.value)
        now = self._clock()
        # One window after the last call (no later than the grace: where it is shortened,
        # nothing else spends the rate).
        ends = min(current.until, now + min(self.window + MARGIN, self.grace))
        if ends < current.until:
            self._put(Reservation(current.since, ends), stored.etag)  # lost to a newer one: it stands

    def _put(self, reservation: Reservation, etag: str | None) -> bool:
        """False when another runner wrote it meanwhile (one runner holds the job's lease, so
        only one that outlived it): its reservation stands."""
        try:
            self.state.put_checkpoint(RESERVATION, reservation.dump(), etag=etag)
        except ConflictError:
            return False
        return True
