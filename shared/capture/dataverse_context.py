"""Read the RemoteExecutionContext JSON a Dataverse webhook step posts, into a Notice.

Pure: no I/O. Anything malformed raises BadRequestError with a message that says what is wrong
(the webhook answers 4xx); a well-formed call for a table or message mdsync does not sync is
``Ignored`` (the webhook answers 200 and queues nothing, so Dataverse does not retry it).

Malformed means: not UTF-8 JSON (NaN/Infinity, integers beyond Python's digit limit and nesting
too deep included), not an object, a required property missing or of the wrong type
(``MessageName``, ``PrimaryEntityName``, ``PrimaryEntityId``), a ``/Date(ms)/`` that is not one
or is out of range, a mapped column whose value has no readable type, or an ``originatingleadid``
that is not a lead reference. Unknown properties are ignored, as the reference asks (Dataverse
adds context properties over time), and ``null`` lists read as empty. Every failure to build the
notice is a BadRequestError, so no input can make the webhook answer 5xx; values a notice cannot
carry are fitted by ``shared.notices.fit_changes`` (the notice is then marked trimmed).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticSerializationError

from shared.errors import BadRequestError
from shared.notices import (
    Entity,
    FieldChange,
    FieldValue,
    Kind,
    Notice,
    Source,
    fit_changes,
    linked_marketo_id,
    safe_text,
)

MAX_BODY_BYTES = 1024 * 1024  # Dataverse trims at 256 KB; anything far above is not Dataverse.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE = re.compile(r"^/Date\((-?\d{1,15})([+-]\d{4})?\)/$")
_MESSAGES = {"Create": Kind.CREATED, "Update": Kind.UPDATED, "Delete": Kind.DELETED, "Merge": Kind.MERGED}
_ENTITIES = {"lead": Entity.LEAD, "contact": Entity.CONTACT}
# Columns read besides the mapped ones: the email for logs, qualification, the row version.
_EXTRA_COLUMNS = frozenset({"emailaddress1", "originatingleadid", "versionnumber"})


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

    @field_validator("Attributes", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


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

    @field_validator("InputParameters", "PreEntityImages", "PostEntityImages", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("OperationCreatedOn")
    @classmethod
    def _dotnet_date(cls, value: str | None) -> str | None:
        if value is not None:
            parse_date(value)  # its ValueError names the problem
        return value


def parse_date(value: str) -> datetime:
    """A DataContract ``/Date(ms)/`` (optionally with an offset annotation) as UTC."""
    match = _DATE.match(value)
    if match is None:
        raise ValueError(f"not a /Date(milliseconds)/ value: {value[:40]!r}")
    try:
        # Integer arithmetic: a float of seconds loses microseconds at this magnitude.
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    except OverflowError as exc:
        raise ValueError(f"date out of range: {value[:40]!r}") from exc


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def typed_value(value: Any) -> FieldValue:
    """One attribute value: OptionSetValue -> int, Money -> float, EntityReference -> id,
    ``/Date(ms)/`` -> ISO 8601 UTC; primitives as they are. Raises ValueError if unreadable."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if _DATE.match(value):
            return parse_date(value).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value
    if isinstance(value, dict):
        kind = str(value.get("__type", "")).split(":", 1)[0]
        number = _number(value.get("Value"))
        if kind in ("OptionSetValue", "Money") and number is not None:
            return number
        if kind == "EntityReference" and isinstance(value.get("Id"), str):
            try:
                return str(UUID(value["Id"]))
            except ValueError:
                raise ValueError("unreadable EntityReference: its Id is not a GUID") from None
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
                raise BadRequestError(f"entity {item.key!r}: {_first_problem(exc)}") from None
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


def _first_problem(exc: PydanticValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "(body)"
    return f"{where}: {first['msg']}"


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load(body: bytes) -> _Context:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}", status=413)
    try:
        # Strict UTF-8 (RFC 8259); json.loads(bytes) alone would let encoded surrogates through.
        document = json.loads(body.decode("utf-8"), parse_float=_finite, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequestError("body is not valid JSON: nested too deeply") from None
    # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, integers over the digit limit.
    except ValueError as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequestError("body must be a JSON object (a RemoteExecutionContext)")
    try:
        return _Context.model_validate(document)
    except PydanticValidationError as exc:
        raise BadRequestError(f"not a RemoteExecutionContext: {_first_problem(exc)}") from None


def _version(target: _Entity | None, post: _Entity | None, new: Mapping[str, FieldValue]) -> str | None:
    """The row version the change produced: the entity's RowVersion, else ``versionnumber``."""
    for entity in (target, post):
        if entity is not None and entity.RowVersion:
            return safe_text(entity.RowVersion)
    number = new.get("versionnumber")
    if isinstance(number, int) and not isinstance(number, bool) and 0 <= number < 2**63:
        return str(number)
    return None


def _lead_reference(value: FieldValue) -> str | None:
    if value is None:
        return None
    try:
        return str(UUID(str(value)))
    except ValueError:
        raise BadRequestError("attribute 'originatingleadid': not a lead reference") from None


def _changed(
    kind: Kind,
    mapped: set[str],
    submitted: dict[str, FieldValue],
    old: dict[str, FieldValue],
    new: dict[str, FieldValue],
) -> dict[str, FieldChange]:
    if kind is Kind.DELETED:
        names = set(old) & mapped
    elif kind is Kind.UPDATED:
        # The post-image repeats unchanged columns; report what the update submitted or changed.
        names = {
            n for n in (set(submitted) | set(old)) & mapped if n in submitted or old.get(n) != new.get(n)
        }
    else:
        names = set(new) & mapped
    return {n: FieldChange(old=old.get(n), new=new.get(n)) for n in sorted(names)}


def _merge_notice(context: _Context, entity: Entity, sync_user_ids: Collection[str]) -> Notice:
    """A Merge: the subordinate (SubordinateId) was merged into the target (PrimaryEntityId)."""
    subordinate = next((p.value for p in context.InputParameters if p.key == "SubordinateId"), None)
    try:
        subordinate_id = str(UUID(str(subordinate)))
    except ValueError:
        raise BadRequestError("a Merge context needs a SubordinateId (a GUID)") from None
    actor = str(context.InitiatingUserId or context.UserId or "") or None
    occurred = parse_date(context.OperationCreatedOn) if context.OperationCreatedOn else datetime.now(UTC)
    return Notice(
        source=Source.DYNAMICS,
        entity=entity,
        record_id=subordinate_id,
        kind=Kind.MERGED,
        merged_into=str(context.PrimaryEntityId),
        occurred_at=occurred,
        actor=actor,
        own_write=actor is not None and actor in {u.lower() for u in sync_user_ids},
    )


def parse_context(
    body: bytes,
    *,
    columns: Mapping[str, Collection[str]],
    sync_user_ids: Collection[str] = (),
    trimmed: bool = False,
    link_column: str | None = None,
) -> Notice | Ignored:
    """Turn one webhook body into a Notice.

    ``columns`` maps each synced entity to the Dynamics columns worth reporting (mapped fields);
    ``link_column`` is the column holding the linked Marketo id (the notice's ``linked_to``);
    ``sync_user_ids`` are the systemuserids of mdsync's own application users; ``trimmed`` is the
    ``x-ms-dynamics-msg-size-exceeded`` header (no images: the worker re-reads the row).
    """
    context = _load(body)
    entity = _ENTITIES.get(context.PrimaryEntityName)
    kind = _MESSAGES.get(context.MessageName)
    if entity is None or entity.value not in columns:
        return Ignored(f"table {context.PrimaryEntityName[:64]!r} is not synced")
    if kind is None:
        return Ignored(f"message {context.MessageName[:64]!r} is not synced")
    if kind is Kind.MERGED:
        return _merge_notice(context, entity, sync_user_ids)
    mapped = set(columns[entity.value])
    wanted = mapped | _EXTRA_COLUMNS | ({link_column} if link_column else set())
    target = None if trimmed else _entity_of(context.InputParameters, "Target")
    pre = None if trimmed else _entity_of(context.PreEntityImages)
    post = None if trimmed else _post_image(context)
    submitted = _attributes(target, wanted)
    new = {**_attributes(post, wanted), **submitted}
    old = _attributes(pre, wanted)
    changes, cut = fit_changes(_changed(kind, mapped, submitted, old, new))
    originating = _lead_reference(new.get("originatingleadid"))
    if kind is Kind.CREATED and entity is Entity.CONTACT and originating is not None:
        kind = Kind.QUALIFIED
    actor = str(context.InitiatingUserId or context.UserId or "") or None
    occurred = parse_date(context.OperationCreatedOn) if context.OperationCreatedOn else datetime.now(UTC)
    email = new.get("emailaddress1", old.get("emailaddress1"))
    try:
        notice = Notice(
            source=Source.DYNAMICS,
            entity=entity,
            record_id=str(context.PrimaryEntityId),
            kind=kind,
            changes=changes,
            version=_version(target, post, new),
            occurred_at=occurred,
            actor=actor,
            own_write=actor is not None and actor in {u.lower() for u in sync_user_ids},
            trimmed=trimmed or cut,
            originating_lead_id=originating,
            linked_to=linked_marketo_id(new.get(link_column, old.get(link_column))) if link_column else None,
            email=safe_text(email) if isinstance(email, str) and len(email) <= 320 else None,
        )
        notice.to_json()  # it must go on the queue
    # A safety net: every field above is checked already.
    except PydanticValidationError as exc:
        raise BadRequestError(f"cannot make a notice of this context: {_first_problem(exc)}") from None
    except PydanticSerializationError as exc:
        raise BadRequestError(f"cannot make a notice of this context: {exc}") from None
    return notice
