"""What an operator can do from the console or the CLI, each recorded with who did it.

- ``replay``: put given-up items back on the queue: parked notices and dead letters, through
  ``shared.replay`` (the one replay path, ``mdsync replay``'s: each a new message, removed from
  its store only once the queue took it; their error records go then), or, with ``discard``,
  remove them without replaying (a body no version can read); a refused value is not an item to
  replay, its person is
  re-synced instead (after the data was fixed, that is what retrying it means); a configuration
  fault is cleared from the list (the function lists it again within a minute if the setting is
  still wrong);
- ``resync``: a forced reconcile of one person: an ``operator`` notice for the pair, which the
  worker never takes for an echo, so both sides are read and every mapped field is reconciled
  against the shadow, whether or not a change was captured. It is not the flow step, which only
  ever creates a missing lead;
- ``pause`` / ``resume``: the pause switch (``shared.console.pause``).

Every action appends an ``AuditEntry``: when, who (the signed-in user, or the CLI user), what, on
which items, and what came of it.
"""

from __future__ import annotations

import getpass
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.console.failures import CONFIGURATION, DEAD_LETTER, PARKED, REFUSED, dead_letter
from shared.console.pause import PauseState, PauseSwitch
from shared.errors import BadRequestError, MdsyncError
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import AuditEntry, ErrorQuery, GivenUpStore, NoticeQueue, OperationsStore, SyncError
from shared.replay import replay

log = logging.getLogger(__name__)

MAX_ITEMS = 10_000  # per action: a larger "all" is done in several runs
DEAD_LETTER_STORE = "dead-letter"  # the given-up store of the queue's dead letters
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class ReplayOutcome:
    """Of the item ids asked for: replayed (or discarded), and the ones that were not (with why)."""

    replayed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def replay_items(
    stores: Sequence[GivenUpStore], queue: NoticeQueue, item_ids: set[str], *, discard: bool = False
) -> ReplayOutcome:
    """``shared.replay.replay`` restricted to ``item_ids``; an id no store holds any longer is
    reported as not replayed."""
    report = replay(stores, queue, only=item_ids, discard=discard, limit=MAX_ITEMS)
    done = report.discarded if discard else report.replayed
    failed = [(item.item_id, why) for item, why in report.failed]
    gone = item_ids - {item.item_id for item in report.found}
    failed += [(item, "no longer waiting (replayed or gone already)") for item in sorted(gone)]
    return ReplayOutcome([item.item_id for item in done], failed)


@dataclass(frozen=True)
class ActionResult:
    action: str
    ok: bool
    message: str
    count: int = 0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "ok": self.ok,
            "message": self.message,
            "count": self.count,
            "details": self.details,
        }


def cli_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


def person_notice(person: str, actor: str) -> Notice:
    """The operator notice that makes the worker reconcile ``person``: a Marketo person id, or
    ``lead:<id>`` / ``contact:<id>`` for a Dynamics record."""
    text = person.strip()
    entity, _, record = text.rpartition(":")
    if not entity and text.isdigit() and 0 < int(text) < 2**53:
        return _operator(Entity.PERSON, text, actor)
    if entity in ("lead", "contact") and _GUID.match(record):
        return _operator(Entity(entity), record.lower(), actor)
    raise BadRequestError(
        f"{text[:60]!r} is not a person: give a Marketo person id, "
        "or lead:<id> / contact:<id> of a Dynamics record"
    )


def _operator(entity: Entity, record_id: str, actor: str) -> Notice:
    return Notice(
        source=Source.OPERATOR,
        entity=entity,
        record_id=record_id,
        kind=Kind.UPDATED,
        occurred_at=datetime.now(UTC),
        actor=actor[:64],
    )


@dataclass
class ConsoleActions:
    operations: OperationsStore
    queue: NoticeQueue
    pause_switch: PauseSwitch
    # Where given-up items wait (``Container.given_up``): parked notices, the queue's dead letters.
    given_up: Sequence[GivenUpStore]

    def dead_letters(self, max_count: int) -> list[SyncError]:
        """Up to ``max_count`` dead letters, read live from the queue (they are not stored)."""
        return [
            dead_letter(item)
            for store in self.given_up
            if store.name == DEAD_LETTER_STORE
            for item in store.peek(max_count)
        ]

    def _audit(self, who: str, action: str, target: str, result: ActionResult) -> ActionResult:
        try:
            self.operations.append_audit(
                [AuditEntry(datetime.now(UTC), who, action, target[:2000], result.message)]
            )
        except MdsyncError as exc:
            # The action happened; losing its record is reported, not hidden.
            log.error("audit entry for %s by %s not written: %s", action, who, exc)
            return ActionResult(
                result.action,
                result.ok,
                result.message + " (audit entry not written)",
                result.count,
                result.details,
            )
        return result

    # --- replay --------------------------------------------------------------------------------

    def chosen(self, keys: Iterable[str] | None, query: ErrorQuery | None) -> list[SyncError]:
        """The errors named by ``keys``, or every error the ``query`` matches (up to MAX_ITEMS)."""
        if keys is not None:
            wanted = list(dict.fromkeys(k for k in keys if k))
            if not wanted:
                raise BadRequestError("choose at least one error to replay")
            dead = [k for k in wanted if k.startswith(f"{DEAD_LETTER}|")]
            found = self.operations.get_errors([k for k in wanted if k not in dead])
            if dead:
                found.update((e.key, e) for e in self.dead_letters(MAX_ITEMS) if e.key in dead)
            return [found[k] for k in wanted if k in found]
        errors: list[SyncError] = []
        if query is None or query.kind in (None, DEAD_LETTER):
            errors += [e for e in self.dead_letters(MAX_ITEMS) if dead_letter_matches(e, query)]
        if query is not None and query.kind == DEAD_LETTER:
            return errors[:MAX_ITEMS]
        cursor: str | None = None
        while len(errors) < MAX_ITEMS:
            page = self.operations.list_errors(query or ErrorQuery(), cursor=cursor, limit=1000)
            errors += page.errors
            cursor = page.cursor
            if cursor is None:
                break
        return errors[:MAX_ITEMS]

    def replay(self, who: str, errors: Sequence[SyncError], *, discard: bool = False) -> ActionResult:
        """Replay the chosen errors; with ``discard``, remove their given-up items instead (refused
        values and configuration faults are then left alone)."""
        items = [e for e in errors if e.kind in (PARKED, DEAD_LETTER) and e.item_id]
        if discard:
            return self._discard(who, items)
        persons = {self._person_of(e) for e in errors if e.kind == REFUSED}
        persons.discard(None)
        ids = {e.item_id for e in items if e.item_id}
        outcome = replay_items(self.given_up, self.queue, ids) if ids else ReplayOutcome()
        done = set(outcome.replayed)
        self.operations.remove_errors([e.key for e in items if e.kind == PARKED and e.item_id in done])
        resynced = []
        for person in sorted(p for p in persons if p):
            self.queue.send([person_notice(person, who)])
            resynced.append(person)
        faults = [e.key for e in errors if e.kind == CONFIGURATION]
        self.operations.remove_errors(faults)
        failed = [f"{item}: {why}" for item, why in outcome.failed]
        message = f"replayed {len(done)} item(s)"
        if resynced:
            message += f", re-synced {len(resynced)} person(s) with refused values"
        if faults:
            message += f", cleared {len(faults)} configuration fault(s) (listed again if still wrong)"
        if failed:
            message += f"; {len(failed)} not replayed (they stay listed)"
        result = ActionResult("replay", not failed, message, len(done) + len(resynced) + len(faults), failed)
        target = ", ".join([e.key for e in items][:20] + resynced[:20]) or "nothing"
        return self._audit(who, "replay", target, result)

    def _discard(self, who: str, items: Sequence[SyncError]) -> ActionResult:
        ids = {e.item_id for e in items if e.item_id}
        outcome = replay_items(self.given_up, self.queue, ids, discard=True) if ids else ReplayOutcome()
        done = set(outcome.replayed)
        self.operations.remove_errors([e.key for e in items if e.kind == PARKED and e.item_id in done])
        failed = [f"{item}: {why}" for item, why in outcome.failed]
        message = f"discarded {len(done)} item(s) without replaying them"
        if failed:
            message += f"; {len(failed)} not discarded (they stay listed)"
        result = ActionResult("discard", not failed, message, len(done), failed)
        return self._audit(who, "discard", ", ".join(sorted(done)[:20]) or "nothing", result)

    @staticmethod
    def _person_of(error: SyncError) -> str | None:
        if error.marketo_id:
            return str(error.marketo_id)
        if error.dynamics_id and error.entity in ("lead", "contact"):
            return f"{error.entity}:{error.dynamics_id}"
        return None

    # --- re-sync, pause, resume ----------------------------------------------------------------

    def resync(self, who: str, person: str) -> ActionResult:
        notice = person_notice(person, who)
        self.queue.send([notice])
        result = ActionResult(
            "resync", True, f"queued a re-sync of {person.strip()} (notice {notice.dedup_id})", 1
        )
        return self._audit(who, "resync", person.strip(), result)

    def pause(self, who: str, reason: str = "") -> ActionResult:
        state = self.pause_switch.set(True, by=who, reason=reason[:500])
        result = ActionResult(
            "pause",
            True,
            "paused: capture keeps queuing, the worker holds every batch until resumed "
            f"(held notices come back every {self.pause_switch.hold_seconds:.0f} s)",
            details=[_since(state)],
        )
        return self._audit(who, "pause", reason[:500] or "sync", result)

    def resume(self, who: str) -> ActionResult:
        self.pause_switch.set(False, by=who)
        result = ActionResult(
            "resume",
            True,
            f"resumed: held notices return within {self.pause_switch.hold_seconds:.0f} s, "
            "then the backlog drains",
        )
        return self._audit(who, "resume", "sync", result)


def dead_letter_matches(error: SyncError, query: ErrorQuery | None) -> bool:
    """The filters a dead letter (read from the queue, not the store) can be held to."""
    if query is None:
        return True
    if query.entity and error.entity != query.entity:
        return False
    if query.reason and error.reason != query.reason:
        return False
    if query.person and query.person.strip().lower() not in (
        str(error.marketo_id),
        (error.dynamics_id or "").lower(),
    ):
        return False
    return not (
        query.field or (query.text and query.text.lower() not in (error.reason + error.message).lower())
    )


def _since(state: PauseState) -> str:
    return f"by {state.by} at {state.at.isoformat() if state.at else '?'}"
