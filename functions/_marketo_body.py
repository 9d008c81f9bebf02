"""The body of a Marketo Call Webhook request: JSON or form-encoded, and the person's id in it.

Shared by the two endpoints Marketo's webhooks call (the flow step and the campaign notice).
Marketo sends exactly what the webhook's template renders; a JSON template whose
``Content-Type`` header was forgotten still arrives as JSON text, so a body that starts with
``{`` is read as JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import azure.functions as func

from functions._http import is_json
from shared.errors import BadRequestError

MAX_BODY = 64 * 1024
ID_FIELDS = ("marketoId", "leadId", "id")
FORM = "application/x-www-form-urlencoded"
_DIGITS = re.compile(r"[0-9]{1,16}")
MAX_ID = 2**53 - 1  # Marketo ids are integers; JSON numbers stay exact below 2**53


def body_fields(req: func.HttpRequest) -> dict[str, Any]:
    """The fields of a JSON object or a form body; 413/415/400 for what is neither."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY:
        raise BadRequestError(f"body exceeds {MAX_BODY} bytes", status=413)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("body is not UTF-8") from None
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type not in ("", FORM) and not is_json(req):
        raise BadRequestError(f"Content-Type must be application/json or {FORM}", status=415)
    if is_json(req) or text.lstrip().startswith("{"):
        return _json_fields(text)
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _json_fields(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, huge integers
        raise BadRequestError(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequestError("body must be a JSON object")
    return {str(k): v for k, v in document.items()}


def marketo_id(fields: Mapping[str, Any]) -> int:
    """The person id (``marketoId``, or ``leadId``/``id``), a number or a string of digits."""
    raw = next((fields[k] for k in ID_FIELDS if k in fields), None)
    if raw is None:
        raise BadRequestError('marketoId is missing (template: {"marketoId": {{lead.Id}}})')
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and _DIGITS.fullmatch(raw.strip()):
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise BadRequestError(f"marketoId must be a positive whole number, got {str(raw)[:40]!r}")
    if not 0 < raw <= MAX_ID:
        raise BadRequestError(f"marketoId must be between 1 and {MAX_ID}")
    return raw


def marketo_id_from(req: func.HttpRequest) -> int:
    """The person id from a JSON or form body."""
    return marketo_id(body_fields(req))
