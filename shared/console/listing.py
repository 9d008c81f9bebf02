"""The error list as the console shows it: the stored errors (refused values, parked notices,
configuration faults), paged newest first, and the queue's dead letters, read live (Service Bus
keeps them; they are listed on the first page, up to ``DEAD_LETTERS_SHOWN``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.console import failures
from shared.console.actions import dead_letter_matches
from shared.ports import ErrorGroup, ErrorQuery, OperationsStore, SyncError

DEAD_LETTERS_SHOWN = 200


@dataclass(frozen=True)
class Listing:
    groups: list[ErrorGroup]
    errors: list[SyncError]
    cursor: str | None


def dead_letter_errors(
    peek: Callable[[int], list[SyncError]], query: ErrorQuery, limit: int
) -> list[SyncError]:
    if query.kind not in (None, failures.DEAD_LETTER):
        return []
    return [e for e in peek(limit) if dead_letter_matches(e, query)]


def list_errors(
    operations: OperationsStore,
    dead_letters: Callable[[int], list[SyncError]],
    query: ErrorQuery,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> Listing:
    """One page; raises ValueError for a cursor this list did not hand out."""
    letters = dead_letter_errors(dead_letters, query, DEAD_LETTERS_SHOWN)
    groups = [] if query.kind == failures.DEAD_LETTER else operations.error_groups(query)
    by_reason: dict[str, list[SyncError]] = {}
    for letter in letters:
        by_reason.setdefault(letter.reason, []).append(letter)
    for reason, items in by_reason.items():
        last = max(e.last_seen for e in items if e.last_seen)
        groups.append(ErrorGroup(failures.DEAD_LETTER, reason, len(items), last))
    groups.sort(key=lambda g: (-g.errors, -g.last_seen.timestamp()))
    if query.kind == failures.DEAD_LETTER:
        return Listing(groups, letters[:limit], None)
    page = operations.list_errors(query, cursor=cursor, limit=limit)
    shown = (letters if cursor is None else []) + page.errors
    return Listing(groups, shown, page.cursor)
