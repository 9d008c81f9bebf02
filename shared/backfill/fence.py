"""Keeping the live sync and the backfill's writes out of each other's way, record by record.

The race it closes: the live worker writes Marketo and Dynamics first and stores the link and the
shadow afterwards (``shared/sync/worker.py``: ``linker.link`` and ``writer.write``, then
``_store_links`` and ``_store_shadows``). Its Dynamics write makes our own user the record's
last modifier, which hides a user's edit from the backfill's guard query, and until the link or
shadow is stored, :func:`shared.backfill.writing.hold_taken` sees nothing in the state store
either. A range of backfill writes checked in that window wrote its older values over the live
change; and a Marketo import, landing minutes after its range was checked, can land after a
live write the check could not have seen.

So both writers announce themselves before they write, in one state-store record (the checkpoint
``backfill/fence``) changed only over the version read (its etag: compare and swap):

* the live worker, before its first write of a batch (while a backfill job has the fence up):
  **claims** the batch's records and persons, and in the same write learns which ranges the
  backfill is writing now: the pairs of its batch in them are put back on the queue for later
  (a transient "the initial sync is writing this record");
* the backfill, before it checks a range: **enters** the range (``mw``, ``cf``, ``dw``: bucket
  range), and in the same write learns the claims of live batches: those records are held
  (nothing written on either side, handed to the live sync at the end), with those
  ``hold_taken`` finds in the state store. It **leaves** the range once its writes have landed
  (Dynamics: after the requests; Marketo: once the imports are complete).

Both changes go through the one record's etag, so they are ordered: whichever comes second sees
the first. Either the backfill sees the claim (and holds the record) or the worker sees the
range (and waits); a live write can no longer land between the backfill's check and its write.

What is left, and why it is small: a live batch that read the fence before the job put it up
does not claim. The backfill's reads begin after the fence is up, and its first range waits
until the fence is older than the longest a worker batch can run (``functionTimeout``, 4 min,
plus a margin): by then every such batch has stored its link and shadow, which ``hold_taken``
sees, or has died and is retried (claiming). Claims of a batch that died expire after
``CLAIM_SECONDS``; ranges of a job that stopped, after ``RANGE_SECONDS`` (an import range is
re-entered, so kept, while it is collected); the fence comes down when the job ends, and lapses
when the job stopped without ending (its runner killed and the job never resumed): every step
of the job beats on it (at most one write a minute), and a fence neither beaten nor entered for
``STOPPED_SECONDS`` is down. A job that comes back to a lapsed fence puts it up anew, so its next
range waits for the settle again (live batches did not claim meanwhile).

Cost: without a job, one point read per worker batch (the record is absent). During a job, one
read and one conditional write per batch to claim, one to release; per backfill range, two.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.backfill.staging import person_bucket, record_bucket, record_key
from shared.errors import ConflictError, ServiceUnavailableError
from shared.ports import Claimed, StateStore, WriteFence

FENCE = "backfill/fence"
CLAIM_SECONDS = 600.0  # a claim older than this is a batch that has ended (functionTimeout 4 min)
RANGE_SECONDS = 1800.0  # a range not re-entered for this long belongs to a job that stopped
# A worker batch runs at most host.json's functionTimeout (4 min): the fence must be this old
# before the backfill checks its first range.
SETTLE_SECONDS = 250.0
# A fence neither beaten by its job's steps nor entered for this long belongs to a job that
# stopped without ending; live batches stop claiming. (A running job steps every poll; one that
# waits longer, for the next day's quota, finds the fence lapsed and puts it up anew.)
STOPPED_SECONDS = 1800.0
BEAT_SECONDS = 60.0  # a step beats at most this often: one write a minute, not one a step
MAX_ATTEMPTS = 20


@dataclass
class Claim:
    at: float
    records: list[str]  # record_key(entity, id)
    persons: list[int]


@dataclass
class Range:
    kind: str  # "mw", "cf": pairs and creations sent to Marketo; "dw": Dynamics writes
    first: int
    last: int
    at: float

    def holds(self, records: Iterable[tuple[str, str]], persons: Iterable[int]) -> bool:
        buckets = {record_bucket(e, d) for e, d in records} | {person_bucket(m) for m in persons}
        return any(self.first <= b <= self.last for b in buckets)


@dataclass
class FenceState:
    job: str = ""
    since: float = 0.0
    beat: float = 0.0  # the job's last step (0: a record written before the beat existed)
    ranges: dict[str, Range] = field(default_factory=dict)
    claims: dict[str, Claim] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return bool(self.job)

    def live(self, now: float) -> bool:
        """Up, and touched by its job lately (not lapsed)."""
        touched = max([self.since, self.beat, *(r.at for r in self.ranges.values())])
        return self.up and now - touched < STOPPED_SECONDS

    def dump(self) -> str:
        return json.dumps(
            {
                "job": self.job,
                "since": self.since,
                "beat": self.beat,
                "ranges": {k: vars(r) for k, r in self.ranges.items()},
                "claims": {k: vars(c) for k, c in self.claims.items()},
            }
        )

    @staticmethod
    def load(value: str) -> FenceState:
        data: dict[str, Any] = json.loads(value)
        return FenceState(
            data.get("job", ""),
            float(data.get("since", 0.0)),
            float(data.get("beat", 0.0)),
            {k: Range(**r) for k, r in data.get("ranges", {}).items()},
            {k: Claim(**c) for k, c in data.get("claims", {}).items()},
        )

    def expire(self, now: float) -> None:
        if self.up and not self.live(now):
            _clear(self)  # its job stopped without ending
        self.claims = {k: c for k, c in self.claims.items() if now - c.at < CLAIM_SECONDS}
        self.ranges = {k: r for k, r in self.ranges.items() if now - r.at < RANGE_SECONDS}


class Fence(WriteFence):
    """The fence record, changed over its etag by the live worker and the backfill alike."""

    def __init__(self, state: StateStore, *, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self._clock = clock

    def current(self) -> FenceState:
        stored = self.state.get_checkpoint(FENCE)
        return FenceState.load(stored.value) if stored is not None else FenceState()

    def _change(self, change: Callable[[FenceState], bool]) -> FenceState:
        """Apply ``change`` to the current state and write it over the version read (again on a
        conflict); ``change`` returns False when there is nothing to write. The state as written
        (or as read, when nothing was)."""
        for _ in range(MAX_ATTEMPTS):
            stored = self.state.get_checkpoint(FENCE)
            fence = FenceState.load(stored.value) if stored is not None else FenceState()
            fence.expire(self._clock())
            if not change(fence):
                return fence
            try:
                self.state.put_checkpoint(FENCE, fence.dump(), etag=stored.etag if stored else None)
            except ConflictError:
                continue  # the other side wrote meanwhile: look again
            return fence
        # Transient: the live batch is tried again later, the backfill's unit too.
        raise ServiceUnavailableError("the backfill's fence kept changing; try again", service="state")

    # --- the backfill's side ------------------------------------------------------------------------

    def put_up(self, job_id: str) -> float:
        """The job runs (each of its steps says so): live batches claim from now on. When it went
        up (kept for the same job while the fence has not lapsed)."""
        now = self._clock()

        def up(fence: FenceState) -> bool:
            if fence.job == job_id:
                if now - fence.beat < BEAT_SECONDS:
                    return False
                fence.beat = now
                return True
            fence.job, fence.since, fence.beat, fence.ranges = job_id, now, now, {}
            return True

        return self._change(up).since

    def take_down(self) -> None:
        """The job has ended: live batches stop claiming."""
        self._change(lambda fence: _clear(fence) if fence.up else False)

    def enter(self, name: str, kind: str, first: int, last: int) -> tuple[set[str], set[int]]:
        """The backfill is about to check and write the range ``name``: the records and persons
        live batches have claimed (each to hold)."""
        now = self._clock()

        def enter(fence: FenceState) -> bool:
            fence.ranges[name] = Range(kind, first, last, now)
            return True

        fence = self._change(enter)
        records = {key for claim in fence.claims.values() for key in claim.records}
        persons = {m for claim in fence.claims.values() for m in claim.persons}
        return records, persons

    def leave(self, name: str) -> None:
        self._change(lambda fence: fence.ranges.pop(name, None) is not None)

    # --- the live worker's side (WriteFence) --------------------------------------------------------

    def claim(self, records: Sequence[tuple[str, str, int | None]]) -> Claimed:
        now = self._clock()
        if not records or not self.current().live(now):
            return Claimed(None)
        name = uuid.uuid4().hex
        keys = sorted({record_key(e, d.lower()) for e, d, _ in records})
        persons = sorted({m for _, _, m in records if m})

        def claim(fence: FenceState) -> bool:
            if not fence.up:
                return False
            fence.claims[name] = Claim(now, keys, persons)
            return True

        fence = self._change(claim)
        if not fence.up:
            return Claimed(None)
        busy = {
            (e, d.lower())
            for e, d, m in records
            if any(r.holds([(e, d.lower())], [m] if m else []) for r in fence.ranges.values())
        }
        return Claimed(name, frozenset(busy))

    def release(self, name: str) -> None:
        self._change(lambda fence: fence.claims.pop(name, None) is not None)


def _clear(fence: FenceState) -> bool:
    fence.job, fence.since, fence.beat, fence.ranges, fence.claims = "", 0.0, 0.0, {}, {}
    return True
