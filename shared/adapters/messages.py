"""Decoding the queue messages the Functions host delivers to the worker.

Kept apart from ``servicebus_queue`` so the worker's import does not load the Service Bus SDK
(import time is cold-start time): this module needs only pydantic and the notice model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError as PydanticValidationError

from shared.errors import BadRequestError
from shared.notices import Notice

if TYPE_CHECKING:
    import azure.functions as func


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
        raise BadRequestError(f"the message body is not a valid notice: {problems}") from exc
