"""The two ports the core talks through: the notice queue and the state store.

Each has a production adapter (Azure Service Bus; Azure Table Storage) and an embedded one
(SQLite), in ``shared/adapters/``. The same contract tests run against both, so an adapter
cannot drift from what the worker relies on.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.errors import ConflictError
from shared.notices import FieldValue, Notice

# --- queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawMessage:
    """A message as the queue carries it: an id (the duplicate-detection key) and a body."""

    message_id: str
    body: str


@dataclass(frozen=True)
class ReceivedMessage:
    """A message delivered under a peek-lock (the embedded queue), with its body as it was sent:
    like Service Bus, the queue does not judge what it carries; the worker reads it."""

    body: str
    message_id: str
    lock_token: str
    delivery_count: int
    enqueued_at: datetime

    @property
    def notice(self) -> Notice:
        """The notice the body holds (pydantic's ValidationError when it holds none)."""
        return Notice.from_json(self.body)


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    description: str
    dead_lettered_at: datetime


class NoticeQueue(abc.ABC):
    """Where change capture puts notices and the worker reschedules them.

    ``send`` returns only once the notices are durably queued; it raises TransientError when the
    queue cannot take them (the caller answers 503 or keeps its checkpoint). Sending a notice whose
    ``dedup_id`` was already sent within the duplicate-detection window is accepted and dropped.
    """

    @abc.abstractmethod
    def send(self, notices: Sequence[Notice]) -> None: ...

    @abc.abstractmethod
    def schedule(self, notices: Sequence[Notice], at: datetime) -> None:
        """Make the notices visible at ``at`` (UTC), for delayed retries."""

    @abc.abstractmethod
    def send_raw(self, messages: Sequence[RawMessage], *, at: datetime | None = None) -> None:
        """Queue bodies as they are, under the given ids (replay: a body this code may not be able
        to read is still put back for a reader that can; the backfill's steps, which are not
        notices), visible at once or from ``at`` (UTC). Same guarantees as ``send``."""

    def compact(self) -> None:  # noqa: B027 - optional hook
        """Give back the room settled messages took (the embedded queue's file; Service Bus
        removes settled messages itself)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class LocalQueue(NoticeQueue):
    """The consuming side, which Azure gives us through the Service Bus trigger and which the
    embedded queue implements itself (for the local host and tests)."""

    @abc.abstractmethod
    def receive(self, max_count: int, *, lock_seconds: float = 60.0) -> list[ReceivedMessage]: ...

    @abc.abstractmethod
    def complete(self, lock_token: str) -> None: ...

    def complete_all(self, lock_tokens: Sequence[str]) -> list[str]:
        """Complete each message (an invocation's batch); the tokens whose lock was lost (those
        messages come back). The embedded queue settles them in one transaction."""
        lost = []
        for token in lock_tokens:
            try:
                self.complete(token)
            except ConflictError:
                lost.append(token)
        return lost

    @abc.abstractmethod
    def abandon(self, lock_token: str) -> None:
        """Release the lock; the delivery count grows and the message is dead-lettered with
        ``MaxDeliveryCountExceeded`` once it reaches the maximum deliveries."""

    @abc.abstractmethod
    def dead_letter(self, lock_token: str, reason: str, description: str = "") -> None: ...

    @abc.abstractmethod
    def dead_letters(self) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def active_count(self) -> int:
        """Messages waiting or locked (scheduled ones included)."""


# --- state ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    name: str
    value: str
    etag: str


@dataclass(frozen=True)
class Link:
    """A Marketo person linked to one Dynamics lead or contact."""

    marketo_id: int
    entity: str  # "lead" or "contact"
    dynamics_id: str
    etag: str = ""


@dataclass(frozen=True)
class Shadow:
    """The last values the sync wrote or saw equal on both sides, normalised, per mapped field."""

    marketo_id: int
    values: dict[str, FieldValue] = field(default_factory=dict)
    etag: str = ""


@dataclass(frozen=True)
class LogEntry:
    """One line of the sync log: what happened to one person, and why."""

    marketo_id: int | None
    dynamics_id: str | None
    entity: str
    action: str  # e.g. "to_dynamics", "to_marketo", "collision", "failed", "linked", "unlinked"
    detail: str
    fields: tuple[str, ...] = ()
    at: datetime | None = None
    notice_id: str | None = None
    # Values shown to signed-in operators on a person's page, never logged: for a collision,
    # ``marketo`` and ``dynamics`` (both values as read) and ``winner``.
    values: dict[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True)
class LeaseState:
    """Who holds a lease, and until when (UTC)."""

    name: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class ParkedNotice:
    """A notice that ran out of attempts; replayable with ``mdsync replay``."""

    dedup_id: str
    body: str
    reason: str
    parked_at: datetime


# --- given up, replayable --------------------------------------------------------------------


@dataclass(frozen=True)
class GivenUp:
    """Something the sync gave up on, kept so that ``mdsync replay`` can put it back on the queue:
    a parked notice, a dead letter, an unreadable message with its raw body. One concept whatever
    the store; ``store`` says where it waits and ``item_id`` names it there."""

    store: str
    item_id: str
    body: str
    reason: str
    at: datetime


class GivenUpStore(abc.ABC):
    """A place where given-up items wait: the state store's parked notices, a queue's dead letters.

    ``take`` hands items out for replay, held (under a peek-lock where the store has one) until
    each is ``remove``d, once its replacement is on the queue, or ``release``d, kept as it was.
    """

    name: str = ""

    @abc.abstractmethod
    def peek(self, max_count: int) -> list[GivenUp]:
        """Up to ``max_count`` items, oldest first, left where they are."""

    @abc.abstractmethod
    def take(self, max_count: int) -> list[GivenUp]: ...

    @abc.abstractmethod
    def remove(self, items: Sequence[GivenUp]) -> None: ...

    def release(self, items: Sequence[GivenUp]) -> None:  # noqa: B027 - nothing is held by default
        """Keep these items where they are."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class RateBudget(abc.ABC):
    """Calls per window shared by every process that spends one API's rate: Marketo's 100 calls
    per 20 s are the instance's, however many Function instances spend them."""

    @abc.abstractmethod
    def take(self) -> float:
        """One call: 0.0 when it may be made now (it is counted), otherwise the seconds to wait
        before asking again (nothing was taken)."""


class StateStore(abc.ABC):
    """Checkpoints, person links, shadows, the sync log and parked notices.

    Writes that carry an ``etag`` are conditional: a stale etag raises ConflictError, so two
    overlapping runs cannot both advance a checkpoint or overwrite each other's shadow.
    """

    # checkpoints
    @abc.abstractmethod
    def get_checkpoint(self, name: str) -> Checkpoint | None: ...

    @abc.abstractmethod
    def put_checkpoint(self, name: str, value: str, *, etag: str | None) -> Checkpoint:
        """Create (etag None: fails with ConflictError if it exists) or replace (etag matches)."""

    # links
    @abc.abstractmethod
    def get_links_by_marketo(self, marketo_ids: Iterable[int]) -> dict[int, Link]: ...

    @abc.abstractmethod
    def get_links_by_dynamics(
        self, entity: str, dynamics_ids: Iterable[str], *, hints: Mapping[str, int] | None = None
    ) -> dict[str, Link]:
        """The links of these records, by the ids as asked (any case).

        ``hints``: record id -> the Marketo id the record's own link column names. A store may
        look those persons up first and take a person's link when it names the record; the
        answer is the one it gives without hints (a wrong hint costs a lookup, no more; the
        Table store's docstring names the one crash gap where the two may differ).
        """

    @abc.abstractmethod
    def put_link(self, link: Link) -> Link:
        """Create or replace the link of ``link.marketo_id`` (replacing its Dynamics side)."""

    @abc.abstractmethod
    def delete_link(self, link: Link) -> None:
        """Drop the link; succeeds when it is already gone."""

    @abc.abstractmethod
    def list_links(self, *, after: int = 0, limit: int = 1000) -> list[Link]:
        """Up to ``limit`` links in Marketo-id order, of persons with an id above ``after``: a
        page of all of them (the last id is the next page's ``after``). The backfill reads every
        link this way, a page per request rather than a lookup per record."""

    def put_links(self, links: Sequence[Link]) -> dict[int, ConflictError]:
        """:meth:`put_link` for each link (in bulk where the adapter can); the links that were
        not written, by Marketo id, with why (a stale etag, a record linked to another person).
        The others are written."""
        refused: dict[int, ConflictError] = {}
        for link in links:
            try:
                self.put_link(link)
            except ConflictError as exc:
                refused[link.marketo_id] = exc
        return refused

    # shadows
    @abc.abstractmethod
    def get_shadows(self, marketo_ids: Iterable[int]) -> dict[int, Shadow]: ...

    @abc.abstractmethod
    def put_shadows(self, shadows: Sequence[Shadow]) -> None: ...

    @abc.abstractmethod
    def delete_shadow(self, marketo_id: int) -> None: ...

    # sync log
    @abc.abstractmethod
    def append_log(self, entries: Sequence[LogEntry]) -> None: ...

    @abc.abstractmethod
    def read_log(
        self, *, marketo_id: int | None = None, dynamics_id: str | None = None, limit: int = 200
    ) -> list[LogEntry]: ...

    @abc.abstractmethod
    def expire_log(self, before: datetime) -> None:
        """Drop the sync log's entries older than ``before`` (the retention; see
        shared/retention.py). An adapter may keep some up to a day longer (Table Storage drops
        whole days); it never drops a newer one."""

    # leases (one poller or sweep run at a time; see shared/capture/lease.py)
    @abc.abstractmethod
    def acquire_lease(self, name: str, owner: str, seconds: float, *, replacing: str | None = None) -> bool:
        """Hold ``name`` for ``seconds`` from now, when it is free, expired, already ``owner``'s
        (a renewal), or still held by ``replacing`` (a holder known to be gone). Atomic: of
        several callers at once, one wins."""

    @abc.abstractmethod
    def get_lease(self, name: str) -> LeaseState | None:
        """The lease as stored (it may have expired), or None when nobody holds it."""

    @abc.abstractmethod
    def release_lease(self, name: str, owner: str) -> None:
        """Let go of the lease if ``owner`` still holds it (else nothing happens)."""

    # parked notices
    @abc.abstractmethod
    def park(self, notices: Sequence[ParkedNotice]) -> None: ...

    @abc.abstractmethod
    def parked(self) -> list[ParkedNotice]: ...

    @abc.abstractmethod
    def unpark(self, dedup_ids: Iterable[str]) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# --- the operator console's records ----------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """How many times one thing happened in one UTC hour, for one entity and direction.

    The worker adds its batch's tallies once per batch, so the console's hourly figures cost
    one write per batch, never a scan of the sync log. ``entity`` is ``lead``, ``contact``,
    ``person`` (a Marketo change not yet tied to a lead or contact) or ``-``; ``direction`` is
    ``to_marketo``, ``to_dynamics`` or ``-``; ``name`` says what was counted (console/tallies.py).
    """

    hour: datetime
    entity: str
    direction: str
    name: str
    count: int


@dataclass(frozen=True)
class SyncError:
    """One failure the console lists: a refused value, a parked notice, a configuration fault.

    ``key`` names it (the same failure seen again updates ``last_seen`` and ``count``); ``kind``
    and ``reason`` group it; ``value`` is what was refused, shown to signed-in operators only and
    never logged; ``item_id`` is the replayable item (a parked notice's id), if any.
    """

    key: str
    kind: str
    reason: str
    message: str
    entity: str = ""
    marketo_id: int | None = None
    dynamics_id: str | None = None
    field: str = ""
    value: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    count: int = 1
    item_id: str = ""


@dataclass(frozen=True)
class ErrorQuery:
    """Filters of the error list; None matches everything. ``person`` is a Marketo id or a
    Dynamics id; ``text`` matches the reason, message, field or value (case-insensitive)."""

    kind: str | None = None
    reason: str | None = None
    entity: str | None = None
    person: str | None = None
    field: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class ErrorGroup:
    kind: str
    reason: str
    errors: int
    last_seen: datetime


@dataclass(frozen=True)
class ErrorPage:
    """Newest first; ``cursor`` continues the list after the last one (None: no more)."""

    errors: list[SyncError]
    cursor: str | None


@dataclass(frozen=True)
class AuditEntry:
    """An operator's action: who, what, on which items, and what came of it."""

    at: datetime
    who: str
    action: str
    target: str
    outcome: str


class OperationsStore(abc.ABC):
    """What the operator console reads and writes besides the sync's own state: hourly tallies,
    the error list and the audit trail of operator actions. SQLite locally, Table Storage in
    Azure; one contract suite holds both (tests/adapters/test_operations_contract.py)."""

    # tallies
    @abc.abstractmethod
    def add_tallies(self, tallies: Sequence[Tally]) -> None:
        """Add each count to its (hour, entity, direction, name); safe under concurrent writers."""

    @abc.abstractmethod
    def read_tallies(self, since: datetime) -> list[Tally]:
        """Every tally of the hours starting at or after ``since`` (truncated to its hour)."""

    # errors
    @abc.abstractmethod
    def record_errors(self, errors: Sequence[SyncError]) -> None:
        """Create each error, or update the one with its key (``last_seen``, ``count``, message,
        value); ``first_seen`` stays the first."""

    @abc.abstractmethod
    def resolve_errors(self, marketo_ids: Iterable[int], kinds: Iterable[str]) -> int:
        """Drop the errors of these kinds about these persons (they synced since); how many."""

    @abc.abstractmethod
    def remove_errors(self, keys: Iterable[str]) -> None: ...

    @abc.abstractmethod
    def get_errors(self, keys: Iterable[str]) -> dict[str, SyncError]: ...

    @abc.abstractmethod
    def list_errors(self, query: ErrorQuery, *, cursor: str | None = None, limit: int = 100) -> ErrorPage:
        """One page of errors, newest ``last_seen`` first."""

    @abc.abstractmethod
    def error_groups(self, query: ErrorQuery) -> list[ErrorGroup]:
        """Errors per (kind, reason), most errors first."""

    # audit trail
    @abc.abstractmethod
    def append_audit(self, entries: Sequence[AuditEntry]) -> None: ...

    @abc.abstractmethod
    def read_audit(self, limit: int = 50) -> list[AuditEntry]:
        """Newest first."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# --- the queue, as the console sees it -------------------------------------------------------


@dataclass(frozen=True)
class BacklogRow:
    """What waits in the queue for one entity and direction (see QueueStats for how exact)."""

    entity: str
    direction: str
    waiting: int = 0
    retrying: int = 0
    held: int = 0
    dead_lettered: int = 0
    # When change capture saw the oldest change still waiting (its age is the figure).
    oldest_waiting: datetime | None = None


@dataclass(frozen=True)
class QueueStats:
    """Queue counts for the console. ``exact`` False: the totals are the queue's own counts but
    their split per entity and direction is estimated from the ``sampled`` messages at the head
    of the queue (Service Bus counts messages, not what they carry)."""

    rows: list[BacklogRow]
    waiting: int
    scheduled: int
    dead_lettered: int
    exact: bool = True
    sampled: int = 0


class QueueInspector(abc.ABC):
    """Counts what waits in the queue without taking anything off it."""

    @abc.abstractmethod
    def stats(self) -> QueueStats: ...


@dataclass(frozen=True)
class Claimed:
    """A live batch's claim on its records (``name`` None: no other writer is at work, nothing
    was claimed) and the records (entity, id) the other writer is writing now."""

    name: str | None
    busy: frozenset[tuple[str, str]] = frozenset()


class WriteFence(abc.ABC):
    """Another writer of the same records (the initial sync, ``shared/backfill/fence.py``): the
    live worker claims a batch's records before it writes any, holds back those the other
    writer is writing now, and releases the claim once its links and shadows are stored."""

    @abc.abstractmethod
    def claim(self, records: Sequence[tuple[str, str, int | None]]) -> Claimed:
        """``records``: (entity, Dynamics id, Marketo id or None) of each pair and orphan."""

    @abc.abstractmethod
    def release(self, name: str) -> None: ...
