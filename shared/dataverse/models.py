"""Typed results of Dataverse calls: metadata, pages, bulk-write outcomes, delta pages, batch
parts, webhook registration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ServiceError


@dataclass(frozen=True)
class AttributeMetadata:
    """One column, as validation needs it (see shared/sync/validation.py ``Column``)."""

    logical_name: str
    attribute_type: str  # String, Memo, Picklist, State, Status, Boolean, Lookup, DateTime...
    required_level: str  # None, SystemRequired, ApplicationRequired, Recommended
    valid_for_create: bool
    valid_for_update: bool
    valid_for_read: bool
    max_length: int | None = None
    format: str | None = None  # FormatName: Email, Text, Phone, Url, TextArea
    option_labels: Mapping[int, str] = field(default_factory=dict)
    # DateTime columns: DateTimeBehavior (UserLocal, DateOnly, TimeZoneIndependent) and Format
    # (DateOnly, DateAndTime).
    date_behavior: str | None = None
    date_format: str | None = None

    @property
    def options(self) -> frozenset[int] | None:
        """Allowed values of a choice column; None for other types."""
        if self.attribute_type in ("Picklist", "State", "Status"):
            return frozenset(self.option_labels)
        return None


@dataclass(frozen=True)
class KeyInfo:
    """An alternate key (``EntityKeyMetadata``); usable only when ``status`` is ``Active``."""

    logical_name: str
    columns: tuple[str, ...]
    status: str  # Pending, InProgress, Active, Failed

    @property
    def active(self) -> bool:
        return self.status == "Active"


@dataclass(frozen=True)
class TableInfo:
    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    change_tracking: bool
    optimistic_concurrency: bool


@dataclass(frozen=True)
class EntityMetadata:
    table: TableInfo
    attributes: Mapping[str, AttributeMetadata]

    @property
    def logical_name(self) -> str:
        return self.table.logical_name

    @property
    def entity_set(self) -> str:
        return self.table.entity_set


@dataclass(frozen=True)
class DeltaPage:
    """What changed since a delta link: current rows, deleted ids, and the next delta link."""

    changed: list[dict[str, Any]]
    deleted: list[str]
    delta_link: str


@dataclass(frozen=True)
class RowPage:
    """One page of a table read: its rows, and the link to the next page (None on the last)."""

    rows: list[dict[str, Any]]
    next_link: str | None


@dataclass(frozen=True)
class RowResult:
    """One row of a bulk write: its position in the input, and its error if it was not written."""

    index: int
    error: ServiceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class BatchRequest:
    """One operation of a ``$batch``; ``path`` is relative to the service root (``leads(…)``)
    or a ``$n`` reference to an earlier part of the same change set."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_id: str | None = None


@dataclass(frozen=True)
class BatchResponse:
    status: int
    headers: Mapping[str, str]
    body: Any
    error: ServiceError | None = None

    @property
    def entity_id(self) -> str | None:
        """The GUID in OData-EntityId (creates and upserts)."""
        location = self.headers.get("odata-entityid") or self.headers.get("location") or ""
        if "(" in location and location.endswith(")"):
            return location.rsplit("(", 1)[1][:-1]
        return None


@dataclass(frozen=True)
class StepSpec:
    """A webhook step: an async post-operation step on ``message`` of ``entity``.

    ``pre_image``/``post_image``: None for no image, ``()`` for all columns, or the columns."""

    entity: str
    message: str
    filtering_attributes: tuple[str, ...] = ()
    pre_image: tuple[str, ...] | None = None
    post_image: tuple[str, ...] | None = None
    mode: int = 1
    stage: int = 40
    rank: int = 1


@dataclass(frozen=True)
class WebhookRegistration:
    name: str
    service_endpoint_id: str
    step_ids: tuple[str, ...]
    image_ids: tuple[str, ...]
