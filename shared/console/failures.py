"""The error list's records: every failure an operator may have to act on, in one shape.

Four kinds, one list (``SyncError``), grouped by kind and reason:

- ``refused``: a value the other side refused or that mdsync left out of a write (Dataverse
  validation, a business rule, Marketo not taking a value), one record per person, field and
  code, with the value as sent; resolved when the person next syncs without failing;
- ``parked``: a notice given up on (out of attempts, or refused for a reason that is not the
  person's data), replayable: ``item_id`` is its id in the parked store;
- ``dead_letter``: a queue message dead-lettered by the queue itself (read live from the queue);
  an unreadable message the worker parked is a ``parked`` record without a person;
- ``configuration``: a function that could not run for a setting (it names the setting).

Values are person data: the records hold them for the signed-in operator and the CSV export, and
nothing here logs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from shared.notices import FieldValue, Notice
from shared.ports import GivenUp, Link, ParkedNotice, SyncError

REFUSED = "refused"
PARKED = "parked"
DEAD_LETTER = "dead_letter"
CONFIGURATION = "configuration"
KINDS = (REFUSED, PARKED, DEAD_LETTER, CONFIGURATION)
MAX_VALUE_CHARS = 2000


def person_of(who: Link) -> str:
    return str(who.marketo_id) if who.marketo_id else (who.dynamics_id or "-").lower()


def _text(value: FieldValue) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def refusals(
    who: Link,
    *,
    target: str,
    code: str,
    message: str,
    fields: Iterable[str],
    values: Mapping[str, FieldValue],
    at: datetime,
) -> list[SyncError]:
    """One record per field refused (one without a field when the refusal names none)."""
    reason = f"{target} refused [{code}]"
    names = list(fields) or [""]
    return [
        SyncError(
            key=f"{REFUSED}|{who.entity}|{person_of(who)}|{name}|{code}",
            kind=REFUSED,
            reason=reason,
            message=message,
            entity=who.entity,
            marketo_id=who.marketo_id or None,
            dynamics_id=who.dynamics_id or None,
            field=name,
            value=_text(values.get(name)) if name else "",
            first_seen=at,
            last_seen=at,
        )
        for name in names
    ]


_SERVICE_CODE = re.compile(r"^\w+ \[[^\]]+\](?: \(HTTP \d+\))?")


def reason_class(reason: str) -> str:
    """The part of a reason that groups: ``ServiceUnavailableError: ...`` ->
    ``ServiceUnavailableError``; ``dataverse [0x80040216] (HTTP 403): ...`` -> up to the colon."""
    coded = _SERVICE_CODE.match(reason)
    if coded:
        return coded.group(0)
    head = reason.split(":", 1)[0].strip()
    return head if head and len(head) <= 80 and " " not in head else reason[:80]


def parked(notice: Notice, reason: str, who: Link | None, at: datetime) -> SyncError:
    """``entity`` is the notice's (lead, contact or person): the backlog lane it waited in."""
    entity = notice.entity.value
    marketo_id = who.marketo_id if who and who.marketo_id else None
    if marketo_id is None and notice.entity.value == "person" and notice.record_id.isdigit():
        marketo_id = int(notice.record_id)
    dynamics_id = (who.dynamics_id if who and who.dynamics_id else None) or (
        notice.record_id if notice.entity.value != "person" else None
    )
    return SyncError(
        key=f"{PARKED}|{notice.dedup_id}",
        kind=PARKED,
        reason=reason_class(reason),
        message=reason,
        entity=entity,
        marketo_id=marketo_id,
        dynamics_id=dynamics_id,
        first_seen=at,
        last_seen=at,
        item_id=notice.dedup_id,
    )


def configuration(function: str, settings: Iterable[str], message: str, at: datetime) -> SyncError:
    named = ", ".join(settings) or "settings"
    return SyncError(
        key=f"{CONFIGURATION}|{function}|{named}",
        kind=CONFIGURATION,
        reason=f"misconfigured: {named}",
        message=f"{function} did not run: {message}",
        first_seen=at,
        last_seen=at,
    )


def dead_letter(item: GivenUp) -> SyncError:
    """A dead letter (a given-up item of the queue's dead-letter store) as the list shows it:
    read from the queue, not stored."""
    entity, marketo_id, dynamics_id = "", None, None
    try:
        notice = Notice.from_json(item.body)
    except ValueError:
        notice = None
    if notice is not None:
        entity = notice.entity.value
        if notice.entity.value == "person" and notice.record_id.isdigit():
            marketo_id = int(notice.record_id)
        else:
            dynamics_id = notice.record_id
    return SyncError(
        key=f"{DEAD_LETTER}|{item.item_id}",
        kind=DEAD_LETTER,
        reason=reason_class(item.reason) if item.reason else "dead-lettered",
        message=item.reason,
        entity=entity,
        marketo_id=marketo_id,
        dynamics_id=dynamics_id,
        first_seen=item.at,
        last_seen=item.at,
        item_id=item.item_id,
    )


def unreadable(item: ParkedNotice) -> SyncError:
    """A queue message the worker could not read, parked with its raw body (no person known)."""
    return SyncError(
        key=f"{PARKED}|{item.dedup_id}",
        kind=PARKED,
        reason="unreadable message",
        message=item.reason,
        first_seen=item.parked_at,
        last_seen=item.parked_at,
        item_id=item.dedup_id,
    )
