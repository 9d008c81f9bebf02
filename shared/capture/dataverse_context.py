"""Read the RemoteExecutionContext JSON a Dataverse webhook step posts, into a Notice.

Pure: no I/O. Anything malformed raises BadRequestError with a message that says what is wrong
(the webhook answers 4xx); a well-formed call for a table or message mdsync does not sync is
``Ignored`` (the webhook answers 200 and queues nothing, so Dataverse does not retry it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from shared.errors import BadRequestError
from shared.notices import Entity, FieldChange, FieldValue, Kind, Notice, Source

MAX_BODY_BYTES = 1024 * 1024  # Dataverse trims at 256 KB; anything far above is not Dataverse.
_DATE = re.compile(r"^/Date\((-?\d{1,15})([+-]\d{4})?\)/$")
_MESSAGES = {"Create": Kind.CREATED, "Update": Kind.UPDATED, "Delete": Kind.DELETED}
_ENTITIES = {"lead": Entity.LEAD, "contact": Entity.CONTACT}


@dataclass(frozen=True)
class Ignored:
    """A valid call that mdsync does not act on, and why."""

    reason: str


class _KeyValue(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str = Field(max_length=256)
    value: Any = None


class _Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    Attributes: list[_KeyValue] = Field(default_factory=list, max_length=2000)
    Id: UUID | None = None
    LogicalName: str | None = Field(default=None, max_length=128)
    RowVersion: str | None = Field(default=None, max_length=64)


class _Context(BaseModel):
    model_config = ConfigDict(extra="ignore")
    MessageName: str = Field(max_length=128)
    PrimaryEntityName: str = Field(max_length=128)
    PrimaryEntityId: UUID
    Stage: int | None = None
    Depth: int = Field(default=1, ge=0, le=1000)
    InitiatingUserId: UUID | None = None
    UserId: UUID | None = None
    OperationCreatedOn: str | None = Field(default=None, max_length=64)
    CorrelationId: UUID | None = None
    InputParameters: list[_KeyValue] = Field(default_factory=list, max_length=200)
    PreEntityImages: list[_KeyValue] = Field(default_factory=list, max_length=50)
    PostEntityImages: list[_KeyValue] = Field(default_factory=list, max_length=50)

    @field_validator("OperationCreatedOn")
    @classmethod
    def _dotnet_date(cls, value: str | None) -> str | None:
        if value is not None and not _DATE.match(value):
            raise ValueError("must be a /Date(milliseconds)/ value")
        return value


def parse_date(value: str) -> datetime:
    match = _DATE.match(value)
    if match is None:
        raise ValueError(f"not a /Date(ms)/ value: {value[:40]!r}")
    try:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"date out of range: {value[:40]!r}") from exc


def typed_value(value: Any) -> FieldValue:
    """One attribute value: OptionSetValue -> int, Money -> float, EntityReference -> id,
    ``/Date(ms)/`` -> ISO 8601 UTC; primitives as they are. Raises ValueError if unreadable."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if value.startswith("/Date("):
            return parse_date(value).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value
    if isinstance(value, dict):
        kind = str(value.get("__type", "")).split(":", 1)[0]
        if kind in ("OptionSetValue", "Money") and isinstance(value.get("Value"), int | float):
            return value["Value"]  # type: ignore[no-any-return]
        if kind == "EntityReference" and isinstance(value.get("Id"), str):
            return str(UUID(value["Id"]))
        if kind in ("Guid", "DateTime") and isinstance(value.get("__value"), str):
            return typed_value(value["__value"])
    raise ValueError(f"unreadable attribute value of type {type(value).__name__}")


def _entity_of(items: list[_KeyValue], key: str | None = None) -> _Entity | None:
    for item in items:
        wanted = key is None or item.key == key
        if wanted and isinstance(item.value, dict) and "Attributes" in item.value:
            try:
                return _Entity.model_validate(item.value)
            except PydanticValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                raise BadRequestError(f"entity {item.key!r}: {where}: {problem['msg']}") from None
    return None


def _attributes(entity: _Entity | None, wanted: Collection[str]) -> dict[str, FieldValue]:
    values: dict[str, FieldValue] = {}
    for attribute in entity.Attributes if entity else []:
        if attribute.key in wanted:
            try:
                values[attribute.key] = typed_value(attribute.value)
            except ValueError as exc:
                raise BadRequestError(f"attribute {attribute.key!r}: {exc}") from None
    return values


def _post_image(context: _Context) -> _Entity | None:
    # Async steps also carry AsynchronousStepPrimaryName: take the first real image instead.
    for item in context.PostEntityImages:
        if item.key != "AsynchronousStepPrimaryName":
            return _entity_of([item])
    return None


def _load(body: bytes) -> _Context:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}", status=413)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequestError("body must be a JSON object (a RemoteExecutionContext)")
    try:
        return _Context.model_validate(document)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise BadRequestError(f"not a RemoteExecutionContext: {where}: {first['msg']}") from None


def parse_context(
    body: bytes,
    *,
    columns: Mapping[str, Collection[str]],
    sync_user_ids: Collection[str] = (),
    trimmed: bool = False,
) -> Notice | Ignored:
    """Turn one webhook body into a Notice.

    ``columns`` maps each synced entity to the Dynamics columns worth reporting (mapped fields);
    ``sync_user_ids`` are the systemuserids of mdsync's own application users; ``trimmed`` is the
    ``x-ms-dynamics-msg-size-exceeded`` header (no images: the worker re-reads the row).
    """
    context = _load(body)
    entity = _ENTITIES.get(context.PrimaryEntityName)
    kind = _MESSAGES.get(context.MessageName)
    if entity is None or entity.value not in columns:
        return Ignored(f"table {context.PrimaryEntityName!r} is not synced")
    if kind is None:
        return Ignored(f"message {context.MessageName!r} is not synced")
    wanted = set(columns[entity.value]) | {"emailaddress1", "originatingleadid", "versionnumber"}
    target = None if trimmed else _entity_of(context.InputParameters, "Target")
    pre = None if trimmed else _entity_of(context.PreEntityImages)
    post = None if trimmed else _post_image(context)
    submitted = _attributes(target, wanted)
    new = {**_attributes(post, wanted), **submitted}
    old = _attributes(pre, wanted)
    mapped = set(columns[entity.value])
    if kind is Kind.DELETED:
        names = set(old) & mapped
    elif kind is Kind.UPDATED:
        # The post-image repeats unchanged columns; report what the update submitted or changed.
        names = {
            n for n in (set(submitted) | set(old)) & mapped if n in submitted or old.get(n) != new.get(n)
        }
    else:
        names = set(new) & mapped
    changes = {n: FieldChange(old=old.get(n), new=new.get(n)) for n in sorted(names)}
    originating = new.get("originatingleadid")
    if kind is Kind.CREATED and entity is Entity.CONTACT and isinstance(originating, str):
        kind = Kind.QUALIFIED
    version = next(
        (e.RowVersion for e in (target, post) if e is not None and e.RowVersion),
        str(new["versionnumber"]) if new.get("versionnumber") is not None else None,
    )
    actor = str(context.InitiatingUserId or context.UserId or "") or None
    occurred = parse_date(context.OperationCreatedOn) if context.OperationCreatedOn else datetime.now(UTC)
    email = new.get("emailaddress1", old.get("emailaddress1"))
    return Notice(
        source=Source.DYNAMICS,
        entity=entity,
        record_id=str(context.PrimaryEntityId),
        kind=kind,
        changes=changes,
        version=version,
        occurred_at=occurred,
        actor=actor,
        own_write=actor is not None and actor in {u.lower() for u in sync_user_ids},
        trimmed=trimmed,
        originating_lead_id=originating if isinstance(originating, str) else None,
        email=email if isinstance(email, str) and len(email) <= 320 else None,
    )
