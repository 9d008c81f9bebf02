"""Change notices: "this pair of records may be out of sync".

A notice is what change capture (Dynamics webhook, Marketo poller, Dynamics sweep) puts on the
queue and what the worker reconciles. The worker never replays a notice's values; it re-reads
both sides. The old/new values only make notices useful to read and to skip cheaply.
"""

from __future__ import annotations

import hashlib
import json
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


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    old: FieldValue = None
    new: FieldValue = None


RecordId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")]


class Notice(BaseModel):
    """One change seen in one system. ``dedup_id`` is deterministic: the same change seen twice
    (a webhook retried, a poll page re-read after a crash) yields the same id, which the queue's
    duplicate detection drops."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    # Dataverse trimmed the payload (> 256 KB): no images, the worker re-reads.
    trimmed: bool = False
    # Lead qualification: the lead the new contact originates from.
    originating_lead_id: RecordId | None = None
    email: str | None = Field(default=None, max_length=320)
    # Retry bookkeeping for transient failures in the worker.
    attempt: int = Field(default=0, ge=0)
    # When change capture first saw the change; used for end-to-end lag.
    captured_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
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
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
        return f"{self.source.value[0]}{self.entity.value[0]}-{digest}"

    def retry(self, attempt: int) -> Notice:
        """The same notice for another attempt (a new dedup id, so the queue keeps it)."""
        return self.model_copy(update={"attempt": attempt, "dedup_id": ""}).recompute()

    def recompute(self) -> Notice:
        data = self.model_dump()
        data["dedup_id"] = ""
        return Notice.model_validate(data)

    @property
    def person_key(self) -> str:
        """Groups notices about the same record within a batch."""
        return f"{self.source.value}:{self.entity.value}:{self.record_id.lower()}"

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, body: str | bytes) -> Notice:
        return cls.model_validate_json(body)
