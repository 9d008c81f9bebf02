"""What the shadow remembers of one field. Pure: no I/O.

The shadow (``shared.ports.Shadow``) holds, per mapped field (by Marketo name), the canonical
value both sides held at the last sync. Two facts can qualify it, each under a reserved key
(Marketo field names never contain ``@``):

* ``<name>@marketo``: the two sides hold different values on purpose. Marketo did not take the
  value mdsync sent (a Block Field Updates rule for the API, or a value it truncated): the plain
  entry is what Dynamics holds, this one what Marketo holds. The refusal was reported; nothing
  is sent again until one side changes.
* ``<name>@before``: mdsync wrote this field to Marketo and has not seen the write confirmed by
  its echo (the Change Data Value activity the poller reads anyway): this is what Marketo held
  when mdsync read it. The echo tells whether someone changed the field between mdsync's read
  and its write (the echo's old value is not this one), and a Marketo value still equal to this
  one after the write tells that Marketo did not take it.

And one about the person: ``@seen``, when Marketo's side as synced was true (the time of the
worker's read, or of the newest change it took from notices without a read,
``shared.sync.carried``). A notice older than that may report a value since replaced.

A shadow written before these keys existed has only plain entries, which read as settled.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import NamedTuple

from shared.notices import FieldValue

SPLIT = "@marketo"
BEFORE = "@before"
SEEN = "@seen"


class Memory(NamedTuple):
    """One field's entry. ``value``: the last value synced (Dynamics' value when split);
    ``marketo``: what Marketo holds (``value`` unless split); ``before``: Marketo's value before
    an unconfirmed write (``pending``). (A tuple: one is made per mapped field and change.)"""

    value: FieldValue
    marketo: FieldValue
    split: bool = False
    pending: bool = False
    before: FieldValue = None


def recall(values: Mapping[str, FieldValue], name: str) -> Memory | None:
    """The memory of field ``name``, or None when the shadow has never seen it (a first link)."""
    if name not in values:
        return None
    value = values[name]
    split = name + SPLIT in values
    pending = name + BEFORE in values
    return Memory(
        value,
        values[name + SPLIT] if split else value,
        split,
        pending,
        values.get(name + BEFORE),
    )


def settle(values: MutableMapping[str, FieldValue], name: str, value: FieldValue) -> None:
    """Both sides hold ``value``."""
    values[name] = value
    values.pop(name + SPLIT, None)
    values.pop(name + BEFORE, None)


def sent(values: MutableMapping[str, FieldValue], name: str, value: FieldValue, before: FieldValue) -> None:
    """``value`` was written to Marketo, which held ``before``: unconfirmed until its echo."""
    settle(values, name, value)
    values[name + BEFORE] = before


def diverge(
    values: MutableMapping[str, FieldValue], name: str, dynamics: FieldValue, marketo: FieldValue
) -> None:
    """Marketo keeps ``marketo`` while Dynamics holds ``dynamics`` (Marketo refused it)."""
    settle(values, name, dynamics)
    values[name + SPLIT] = marketo


def confirm(values: MutableMapping[str, FieldValue], name: str) -> None:
    """The echo of the last write was seen: Marketo holds what was sent."""
    values.pop(name + BEFORE, None)


def pending_fields(values: Mapping[str, FieldValue]) -> set[str]:
    return {key.removesuffix(BEFORE) for key in values if key.endswith(BEFORE)}


def fields(values: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """The plain entries only (the value each field last synced)."""
    return {key: value for key, value in values.items() if "@" not in key}


def seen_at(values: Mapping[str, FieldValue]) -> datetime | None:
    raw = values.get(SEEN)
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None


def mark_seen(values: MutableMapping[str, FieldValue], at: datetime) -> None:
    """The shadow's view of Marketo is as of ``at`` (never moved back)."""
    before = seen_at(values)
    values[SEEN] = max(at, before).isoformat() if before else at.isoformat()
