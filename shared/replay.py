"""Replay: put what the sync gave up on back on the queue, whatever store it waits in.

"Given up, replayable" is one concept (``shared.ports.GivenUp``) kept in two kinds of store:

* parked notices in the state store (``ParkedNotices``): a notice out of attempts on transient
  faults, refused for a reason that is not the person's data, a record a bulk call refused alone,
  or a queue message the worker could not read, kept with its raw body;
* the queue's dead letters (``LocalDeadLetters`` for the embedded queue,
  ``ServiceBusDeadLetters`` in Azure): messages whose batch made the worker crash
  ``maxDeliveryCount`` times.

Every store is listed and replayed the same way. A replay is a new message: a notice gets a
replay token and so a dedup id of its own (the original id would be dropped by the queue's
duplicate detection within its window); a body this code cannot read is sent as it is, under a
new id, for a reader that can. An item leaves its store only once the queue has accepted its
replacement; if the queue refuses, the item stays (and, under a peek-lock, is released).
Replaying is always safe: the worker reconciles current values, so an old notice cannot
overwrite a newer change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError as PydanticValidationError

from shared.errors import MdsyncError
from shared.notices import Notice
from shared.ports import GivenUp, GivenUpStore, NoticeQueue, RawMessage, StateStore

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 1000  # items per store and run


class ParkedNotices(GivenUpStore):
    """The state store's parked notices."""

    name = "parked"

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def peek(self, max_count: int) -> list[GivenUp]:
        return [
            GivenUp(store=self.name, item_id=p.dedup_id, body=p.body, reason=p.reason, at=p.parked_at)
            for p in self.state.parked()[:max_count]
        ]

    def take(self, max_count: int) -> list[GivenUp]:
        return self.peek(max_count)

    def remove(self, items: Sequence[GivenUp]) -> None:
        self.state.unpark(item.item_id for item in items)


def subject(body: str) -> str | None:
    """What a given-up body is about (``dynamics lead <id>``), or None when it is no notice."""
    try:
        notice = Notice.from_json(body)
    except ValueError:
        return None
    return f"{notice.source.value} {notice.entity.value} {notice.record_id}"


def replacement(item: GivenUp, token: str | None = None) -> RawMessage:
    """The message that replays ``item``: its notice with a replay token (attempts start again),
    or, when the body is not a notice this code can read, the body as it is under a new id."""
    token = token or uuid.uuid4().hex
    try:
        notice = Notice.from_json(item.body)
    except (PydanticValidationError, ValueError):
        return RawMessage(f"replay-{token}", item.body)
    fresh = notice.replayed(token)
    return RawMessage(fresh.dedup_id, fresh.to_json())


@dataclass
class ReplayReport:
    """What one run found and did, per item."""

    found: list[GivenUp] = field(default_factory=list)
    replayed: list[GivenUp] = field(default_factory=list)
    discarded: list[GivenUp] = field(default_factory=list)
    # Items the queue did not take (they stay where they were), with why.
    failed: list[tuple[GivenUp, str]] = field(default_factory=list)


def list_given_up(stores: Sequence[GivenUpStore], *, limit: int = DEFAULT_LIMIT) -> list[GivenUp]:
    """Every given-up item, store by store, oldest first within a store; nothing is changed."""
    return [item for store in stores for item in store.peek(limit)]


def replay(
    stores: Sequence[GivenUpStore],
    queue: NoticeQueue,
    *,
    only: Collection[str] | None = None,
    discard: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> ReplayReport:
    """Replay (or, with ``discard``, drop) the given-up items of every store; ``only`` restricts
    it to these item ids. An item is removed only after the queue accepted its replacement."""
    report = ReplayReport()
    for store in stores:
        taken = store.take(limit)
        chosen = [i for i in taken if only is None or i.item_id in only]
        store.release([i for i in taken if i not in chosen])
        report.found += chosen
        if not chosen:
            continue
        if discard:
            store.remove(chosen)
            report.discarded += chosen
            continue
        try:
            queue.send_raw([replacement(item) for item in chosen])
        except MdsyncError as exc:
            log.warning("replay: the queue did not take %d item(s) from %s: %s", len(chosen), store.name, exc)
            store.release(chosen)
            report.failed += [(item, str(exc)) for item in chosen]
            continue
        store.remove(chosen)
        report.replayed += chosen
    return report
