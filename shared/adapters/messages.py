"""Reading the queue messages the Functions host delivers to the worker.

Kept apart from ``servicebus_queue`` so the worker's import does not load the Service Bus SDK
(import time is cold-start time): this module needs only pydantic and the notice model.

A message that holds no notice this code can read (garbage, or a notice written by a newer
version that an older worker meets during a rollback) is neither dropped nor sent back: with the
classic batch binding a Python function cannot dead-letter one message of a batch, and raising
would send the whole batch back until all of it dead-letters. So it is kept in the parked store
with its raw body and the reason (``unreadable``), where ``mdsync replay`` finds it, and the
rest of the batch is synced. The same happens locally, where the embedded queue also delivers
every body as it was sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError as PydanticValidationError

from shared.errors import BadRequestError
from shared.notices import NOTICE_SCHEMA, Notice
from shared.ports import ParkedNotice

if TYPE_CHECKING:
    import azure.functions as func

UNREADABLE = "unreadable"


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


def notice_from_message(msg: func.ServiceBusMessage) -> Notice:
    """The notice carried by a message the Functions host delivered.

    Raises BadRequestError when the body is not a notice; the message says which fields are
    wrong, never their values (they may hold email addresses).
    """
    body = msg.get_body()
    if not body:
        raise BadRequestError("the message body is empty: not a notice")
    try:
        return Notice.from_json(body)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise BadRequestError(
            f"the message body is not a valid notice{_written_by(body)}: {problems}"
        ) from exc


def _written_by(body: bytes) -> str:
    """`` (schema 2; this code reads 1)`` when a newer version wrote the notice."""
    try:
        schema = json.loads(body).get("schema_version")
    except (ValueError, AttributeError):
        return ""
    if isinstance(schema, int) and schema > NOTICE_SCHEMA:
        return f" (written with notice schema {schema}; this code reads {NOTICE_SCHEMA})"
    return ""


def read_messages(
    messages: Sequence[func.ServiceBusMessage],
) -> tuple[list[Notice], list[ParkedNotice]]:
    """The notices of a batch, and the messages that hold none, as parked items with their raw
    body (to keep with ``StateStore.park``)."""
    notices: list[Notice] = []
    unreadable: list[ParkedNotice] = []
    now = datetime.now(UTC)
    for message in messages:
        try:
            notices.append(notice_from_message(message))
        except BadRequestError as exc:
            item_id = f"{UNREADABLE}-{message.message_id or now.timestamp()}"
            unreadable.append(ParkedNotice(item_id, _text(message.get_body() or b""), str(exc), now))
    return notices, unreadable
