"""Replaying given-up items by id: parked notices (state store) and the local queue's dead letters.

A replayed notice is a new message: the same change under an id of its own (``-r`` + a token),
or the queue's duplicate detection would drop it as a repeat of the original within its window.
An item leaves its store only after the queue took its replacement.
"""

from __future__ import annotations

import re
import uuid

from shared.console.actions import ReplayOutcome
from shared.errors import MdsyncError
from shared.notices import Notice
from shared.ports import LocalQueue, NoticeQueue, StateStore

_REPLAYED = re.compile(r"-[rh][0-9a-f]{12}$")


def replacement(notice: Notice) -> Notice:
    base = _REPLAYED.sub("", notice.retry(0).dedup_id)
    return Notice.model_validate(
        {**notice.model_dump(), "attempt": 0, "dedup_id": f"{base}-r{uuid.uuid4().hex[:12]}"}
    )


def replay_items(state: StateStore, queue: NoticeQueue, item_ids: set[str]) -> ReplayOutcome:
    outcome = ReplayOutcome()
    parked = [p for p in state.parked() if p.dedup_id in item_ids]
    for item in parked:
        try:
            notice = Notice.from_json(item.body)
        except ValueError as exc:
            outcome.failed.append((item.dedup_id, f"not a notice this version can read: {exc}"))
            continue
        try:
            queue.send([replacement(notice)])
        except MdsyncError as exc:
            outcome.failed.append((item.dedup_id, str(exc)))
            continue
        state.unpark([item.dedup_id])
        outcome.replayed.append(item.dedup_id)
    rest = item_ids - {p.dedup_id for p in parked}
    if rest and isinstance(queue, LocalQueue) and hasattr(queue, "resubmit_dead_letters"):
        dead = {d.message_id for d in queue.dead_letters()} & rest
        if dead:
            queue.resubmit_dead_letters(sorted(dead))
            outcome.replayed.extend(sorted(dead))
        rest -= dead
    outcome.failed.extend((item, "no longer waiting (replayed or gone already)") for item in sorted(rest))
    return outcome
