"""One bad record never fails a bulk call for the others.

Every bulk call that carries many persons' values (Marketo lookups by email and by id, Sync
Leads, Dataverse reads by id and ``$batch`` writes, Activity Log writes) goes through two steps:

1. **Set aside** before the call: a value that cannot be sent faithfully (an email Marketo's
   filter cannot take, an id that is not an id) is taken out, and its record reported.
2. **Split** on refusal: a call the service refuses *for its content* (``refused_for_content``:
   a ValidationError the service raises about values, Marketo's 1001/1003/609, an HTTP 413) is
   split in halves and each half sent again, until the refused records stand alone; the others
   go through. Splitting costs about two calls per level for each refused record; past
   ``MAX_SPLIT_CALLS`` extra calls the pieces still refused are given up together, named.

A record refused alone is the person's data: it is reported on the person (``refuse``: the sync
log, and the Activity Log where there is a Marketo person) and its notices parked, with a reason
that names the record and the value (emails masked), so ``mdsync replay`` can try it again once
the data is fixed. A refusal that is not about content (a permission, a missing field) is the
same for every piece and is not split.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from shared.errors import UNSENDABLE, ServiceError, TransientError, ValidationError
from shared.redaction import redact

if TYPE_CHECKING:  # the journal writes failures to the Activity Log, which splits its calls
    from shared.notices import Notice
    from shared.ports import Link
    from shared.sync.batch import Batch
    from shared.sync.journal import Journal

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_SPLIT_CALLS = 64
# Marketo codes that mean "this request's values": a lookup or write refused for what it carries.
# Not 1006/1011 (a field unknown or not searchable: configuration, the same for every record).
MARKETO_CONTENT_CODES = frozenset({"1001", "1003", "609", "704"})


def refused_for_content(exc: ServiceError) -> bool:
    """Whether splitting the call can isolate what the service refused."""
    if exc.status == 413 or exc.code == UNSENDABLE:
        return True
    if exc.service == "marketo":
        return exc.code in MARKETO_CONTENT_CODES
    return isinstance(exc, ValidationError)


@dataclass(frozen=True)
class Piece(Generic[T, R]):
    """Some of the items of a bulk call and what became of them: ``answer`` when the call went
    through; else ``error``, which for a content refusal of one item names that item alone."""

    items: list[T]
    answer: R | None = None
    error: ServiceError | None = None

    @property
    def refused(self) -> bool:
        """Refused for its content: one item, or several left together once the split budget
        was spent."""
        return (
            self.error is not None
            and not isinstance(self.error, TransientError)
            and refused_for_content(self.error)
        )

    @property
    def refused_alone(self) -> bool:
        return self.refused and len(self.items) == 1


def send_split(
    items: Sequence[T], call: Callable[[list[T]], R], *, max_calls: int = MAX_SPLIT_CALLS
) -> list[Piece[T, R]]:
    """Call with every item; split a piece the service refuses for its content, down to single
    items. Every item ends in exactly one piece, in order; errors other than ServiceError
    propagate."""
    if not items:
        return []
    done: list[tuple[int, Piece[T, R]]] = []
    pending: list[tuple[int, list[T]]] = [(0, list(items))]
    extra = -1  # the first call is not extra
    while pending:
        start, piece = pending.pop()
        extra += 1
        try:
            done.append((start, Piece(piece, answer=call(piece))))
            continue
        except ServiceError as exc:
            error = exc
        splittable = not isinstance(error, TransientError) and refused_for_content(error)
        if len(piece) > 1 and splittable and extra + len(pending) + 2 <= max_calls:
            middle = len(piece) // 2
            pending += [(start + middle, piece[middle:]), (start, piece[:middle])]
            continue
        if len(piece) > 1 and splittable:
            log.warning("split budget spent: %d items refused together (%s)", len(piece), error)
        done.append((start, Piece(piece, error=error)))
    return [piece for _, piece in sorted(done, key=lambda d: d[0])]


def per_item(answers: Sequence[R], items: Sequence[T]) -> list[R | None]:
    """One answer per item, in order; None for an item the service did not answer for."""
    return [*answers[: len(items)], *[None] * (len(items) - len(answers))]


def first_failure(pieces: Iterable[Piece[T, R]]) -> ServiceError | None:
    """The error of a piece that failed for a reason other than its own content (transient, a
    permission): for a read, the whole batch waits for it or is parked, as before splitting."""
    return next((p.error for p in pieces if p.error is not None and not p.refused), None)


@dataclass(frozen=True)
class Refusal:
    """Why one record could not be carried by a bulk call: set aside (``mdsync-unsendable``) or
    refused alone by the service (its own code)."""

    code: str
    reason: str

    @classmethod
    def of(cls, error: ServiceError) -> Refusal:
        code = error.code or str(error.status or error.service)
        return cls(code, redact(f"{error.service} refused it [{code}]: {error.message}"))

    @classmethod
    def unsendable(cls, reason: str) -> Refusal:
        return cls(UNSENDABLE, redact(reason))


def refuse(
    batch: Batch,
    journal: Journal,
    who: Link,
    notices: Iterable[Notice],
    refusal: Refusal,
    *,
    record: str,
    fields: Iterable[str] = (),
    direction: str = "to_dynamics",
    activity: bool = True,
) -> None:
    """A record a bulk call could not carry: reported on the person (sync log, and the Activity
    Log when ``activity`` and there is a person) and its notices parked, replayable, with a
    reason that names the record (``record``) and the value."""
    reason = f"{record}: {refusal.reason}"
    journal.failed(who, "refused_alone", refusal.code, reason, fields, direction=direction, activity=activity)
    batch.park(notices, reason, who)
