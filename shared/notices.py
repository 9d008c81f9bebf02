"""Change notices: "this pair of records may be out of sync".

A notice is what change capture (Dynamics webhook, Marketo poller, Dynamics sweep) puts on the
queue and what the worker reconciles. The worker never replays a notice's values; it re-reads
both sides. The old/new values only make notices useful to read and to skip cheaply, so a value
too long to carry is left out (``fit_changes``) and the notice marked ``trimmed``: every notice
then fits in one queue message whatever a field holds. See docs/change-capture.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

FieldValue = str | int | float | bool | None


class Source(StrEnum):
    MARKETO = "marketo"
    DYNAMICS = "dynamics"
    OPERATOR = "operator"


class Entity(StrEnum):
    LEAD = "lead"
    CONTACT = "contact"
    PERSON = "person"


class Kind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    QUALIFIED = "qualified"
    # Merged into another record (``merged_into``): a Marketo person merged away (Merge Leads),
    # or a Dynamics record merged into another (the Merge message).
    MERGED = "merged"
    # mdsync's own: it wrote values to this person in Marketo; if no echo has confirmed them
    # by now, read the person and see whether Marketo took them.
    CONFIRM = "confirm"


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    old: FieldValue = None
    new: FieldValue = None


# Longer values are left out of a notice: Service Bus Standard takes 256 KB per message, and a
# notice with a few dozen mapped fields stays far below that at this bound.
MAX_VALUE_CHARS = 2000


def safe_text(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (what a JSON ``"\\ud800"`` escape
    decodes to) would make the notice unserialisable, so it becomes ``?``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def linked_marketo_id(value: object) -> int | None:
    """A Dynamics link column's value as a Marketo id (a notice's ``linked_to``), if it is one:
    it is a hint, so anything else is none."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _carried(value: FieldValue) -> tuple[FieldValue, bool]:
    """The value a notice can carry, and whether it differs from ``value``."""
    if not isinstance(value, str):
        return value, False
    if len(value) > MAX_VALUE_CHARS:
        return None, True
    safe = safe_text(value)
    return safe, safe != value


def fit_changes(changes: Mapping[str, FieldChange]) -> tuple[dict[str, FieldChange], bool]:
    """The changes as a notice can carry them, and whether any value had to be altered: a string
    over ``MAX_VALUE_CHARS`` becomes None, lone surrogates become ``?``. The caller then marks
    the notice ``trimmed``: its values are not to be trusted, and the worker re-reads the record
    instead of skipping the notice as an echo."""
    fitted: dict[str, FieldChange] = {}
    altered = False
    for name, change in changes.items():
        old, old_altered = _carried(change.old)
        new, new_altered = _carried(change.new)
        altered = altered or old_altered or new_altered
        fitted[name] = change if not (old_altered or new_altered) else FieldChange(old=old, new=new)
    return fitted, altered


RecordId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")]

# What this code writes. A reader takes notices of any schema: fields it does not know are
# ignored (a newer writer added them), so a rollback or a slot swap never strands a notice. What
# it cannot read at all (an unknown kind, say) is parked with its raw body, never dropped.
NOTICE_SCHEMA = 1


class Notice(BaseModel):
    """One change seen in one system. ``dedup_id`` is deterministic: the same change seen twice
    (a webhook retried, a poll page re-read after a crash) yields the same id, which the queue's
    duplicate detection drops. A retry and a replay get ids of their own (``retry``,
    ``replayed``), so the queue keeps them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = Field(default=NOTICE_SCHEMA, ge=1)

    source: Source
    entity: Entity
    record_id: RecordId
    kind: Kind
    changes: dict[str, FieldChange] = Field(default_factory=dict)
    # Dataverse RowVersion / versionnumber, or the Marketo activity GUID and date.
    version: str | None = Field(default=None, max_length=64)
    occurred_at: datetime
    actor: str | None = Field(default=None, max_length=64)
    # The acting user is one of the sync's own API users: the worker may skip the notice cheaply.
    own_write: bool = False
    # The values are incomplete: Dataverse trimmed the payload (> 256 KB, no images) or a value
    # had to be altered to be carried (``fit_changes``). Never skipped as an echo; re-read.
    trimmed: bool = False
    # The changes are the person's values when a Marketo campaign called mdsync (its webhook's
    # lead tokens), not old -> new: no old value is known, and none is to be read from them.
    snapshot: bool = False
    # Lead qualification: the lead the new contact originates from.
    originating_lead_id: RecordId | None = None
    # A merge: the record (Marketo person id, or Dynamics record id) this one was merged into.
    merged_into: RecordId | None = None
    # A Dynamics record's link column as the webhook's image showed it: the Marketo person it
    # names, a hint that lets the worker find the link by person (never trusted alone: the
    # person's link must name this record).
    linked_to: Annotated[int, Field(ge=0)] | None = None
    email: str | None = Field(default=None, max_length=320)
    # Retry bookkeeping for transient failures in the worker.
    attempt: int = Field(default=0, ge=0)
    # It waited once for the batching window (``shared/sync/pacer.py``): never again.
    paced: bool = False
    # When change capture first saw the change; used for end-to-end lag.
    captured_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # Set by ``mdsync replay``: every replay is a new message, whatever was sent before.
    replay: str | None = Field(default=None, max_length=64)
    dedup_id: str = Field(default="", max_length=128)

    def model_post_init(self, __context: Any) -> None:
        if not self.dedup_id:
            object.__setattr__(self, "dedup_id", self.compute_dedup_id())

    def compute_dedup_id(self) -> str:
        key = {
            "s": self.source.value,
            "e": self.entity.value,
            "r": self.record_id.lower(),
            "k": self.kind.value,
            "v": self.version,
            # A version (Dataverse RowVersion, Marketo activity GUID) names the change on its own,
            # so a webhook and the sweep reporting the same change produce the same id.
            "t": None
            if self.version
            else self.occurred_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "a": self.attempt,
        }
        if self.replay:
            key["p"] = self.replay
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
        return f"{self.source.value[0]}{self.entity.value[0]}-{digest}"

    def retry(self, attempt: int) -> Notice:
        """The same notice for another attempt (a new dedup id, so the queue keeps it)."""
        return Notice.model_validate({**self.model_dump(), "attempt": attempt, "dedup_id": ""})

    def replayed(self, token: str) -> Notice:
        """The notice replayed by an operator: attempts start again, and ``token`` (new for each
        replay) gives it an id of its own. Within the queue's duplicate-detection window the
        first attempt's id would be dropped as a duplicate, and the change lost."""
        return Notice.model_validate({**self.model_dump(), "attempt": 0, "replay": token, "dedup_id": ""})

    def paced_copy(self) -> Notice:
        """The notice sent back to wait for the batching window: marked, so it waits only once,
        under an id of its own (the queue's duplicate detection would drop the original's id)
        that is the same every time, so a batch deferred twice (redelivered after a crash) is
        queued once."""
        return Notice.model_validate({**self.model_dump(), "paced": True, "dedup_id": f"{self.dedup_id}-w"})

    @property
    def person_key(self) -> str:
        """Groups notices about the same record within a batch."""
        return f"{self.source.value}:{self.entity.value}:{self.record_id.lower()}"

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, body: str | bytes) -> Notice:
        return cls.model_validate_json(body)
