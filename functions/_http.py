"""What the HTTP triggers share: the key check and the answers."""

from __future__ import annotations

import hmac
import json
from typing import Any

import azure.functions as func


def json_response(
    status: int, body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype="application/json",
        headers=headers,
    )


def error(status: int, message: str, *, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return json_response(status, {"status": "error", "error": message}, headers=headers)


def is_json(req: func.HttpRequest) -> bool:
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def secret_matches(presented: str | None, expected: str) -> bool:
    """True when ``presented`` equals the configured secret, compared in constant time: timing
    does not reveal how close it was."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
