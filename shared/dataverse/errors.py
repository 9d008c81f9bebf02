"""Dataverse answers to mdsync errors: the envelope's code and message, mapped by HTTP status.

400 -> ValidationError (fields named in the message are extracted)
401 -> AuthExpiredError          403 -> AccessDeniedError
404 -> NotFoundError             412 -> ConflictError
429 -> RateLimitedError (retry_after from Retry-After)
408, 5xx -> ServiceUnavailableError      other 4xx -> PermanentError
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from shared.errors import (
    AccessDeniedError,
    AuthExpiredError,
    ConflictError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
)
from shared.redaction import redact

SERVICE = "dataverse"
_FIELD_PATTERNS = (
    re.compile(r"length of the '(\w+)' attribute"),
    re.compile(r"of '(\w+)' on record of type"),
    re.compile(r"for the '(\w+)' attribute"),
    re.compile(r"property '(\w+)'"),
    re.compile(r"same value for ([\w, ]+) already exists"),
)


class ConnectionFailed(ServiceUnavailableError):
    """No answer: timeout or connection error. ``sent`` is False when the connection never
    opened, so even a non-idempotent request may be sent again."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message, service=SERVICE)
        self.sent = sent


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def envelope(response: requests.Response) -> tuple[str | None, str]:
    """(code, message) from ``{"error":{"code","message"}}``; a readable fallback otherwise."""
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "") or None
        message = str(error.get("message") or "").strip()
        if message:
            return code, message
        return code, f"HTTP {response.status_code} {response.reason}"
    snippet = redact(response.text[:200]).strip()
    return None, f"HTTP {response.status_code} {response.reason}" + (f": {snippet}" if snippet else "")


def fields_in(message: str) -> tuple[str, ...]:
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(message)
        if match:
            return tuple(name.strip() for name in match.group(1).split(",") if name.strip())
    return ()


def make_error(
    status: int, code: str | None, message: str, *, retry_after: float | None = None
) -> ServiceError:
    kwargs: dict[str, Any] = {"service": SERVICE, "code": code, "status": status}
    if status == 400:
        return ValidationError(message, fields=fields_in(message), **kwargs)
    if status == 401:
        return AuthExpiredError(message, **kwargs)
    if status == 403:
        return AccessDeniedError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 412:
        return ConflictError(message, **kwargs)
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, **kwargs)
    if status == 408 or status >= 500:
        return ServiceUnavailableError(message, retry_after=retry_after, **kwargs)
    return PermanentError(message, **kwargs)


def error_from(response: requests.Response) -> ServiceError:
    code, message = envelope(response)
    return make_error(response.status_code, code, message, retry_after=retry_after(response))


def error_from_part(status: int, headers: dict[str, str], body: Any) -> ServiceError:
    """The error of one ``$batch`` part (its own status and envelope)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code") or "") or None if isinstance(error, dict) else None
    message = str(error.get("message") or "") if isinstance(error, dict) else ""
    seconds = headers.get("retry-after")
    hint = float(seconds) if seconds and seconds.replace(".", "", 1).isdigit() else None
    return make_error(status, code, message or f"HTTP {status}", retry_after=hint)
