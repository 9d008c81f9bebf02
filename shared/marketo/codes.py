"""Marketo error codes -> mdsync's error tree (shared/errors.py).

600/601/602         token missing/invalid/expired: renew once, resend; then AuthExpiredError
606, 615            RateLimitedError (rate window, concurrency); backed off and retried
604/608/611/713,    ServiceUnavailableError; retried within the budget
500/502/614, 1014/1019/1022
1016, 1029 queue    BulkQueueFullError (a RateLimitedError): the bulk queue holds 10 jobs;
                    retry_after = a queue's usual turnover; not retried by the transport
607, 1029 quota     QuotaExhaustedError, retry_after = seconds until midnight US Central
603, 1008/1010      AccessDeniedError
702, 1004, 1013     NotFoundError
1005, 1017,         ConflictError (create-only hit, object exists, bulk job already queued)
1029 queued
703, 1035           UnsupportedError (the subscription lacks the feature or the extract filter)
other 1xxx, 7xx     ValidationError (the values or parameters were refused)
other 6xx           PermanentError (the request itself is wrong: path, method, JSON)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.errors import (
    AccessDeniedError,
    AuthExpiredError,
    ConflictError,
    NotFoundError,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    ServiceError,
    ServiceUnavailableError,
    UnsupportedError,
    ValidationError,
)

SERVICE = "marketo"
AUTH_CODES = frozenset({"600", "601", "602"})
RATE_CODES = frozenset({"606", "615"})
RATE_WINDOW_CODE = "606"  # the instance's calls per 20 s exceeded (615: too many in flight)
UNAVAILABLE_CODES = frozenset({"500", "502", "604", "608", "611", "614", "713", "1014", "1019", "1022"})
# 6xx answers mean the request was rejected before anything ran (error-codes page): such a
# call is safe to resend even when it is not idempotent.
NOT_EXECUTED_CODES = frozenset(c for c in UNAVAILABLE_CODES | RATE_CODES if c.startswith("6"))
ACCESS_CODES = frozenset({"603", "1008", "1010"})
NOT_FOUND_CODES = frozenset({"702", "1004", "1013"})
CONFLICT_CODES = frozenset({"1005", "1017"})
UNSUPPORTED_CODES = frozenset({"703", "1035"})
TOO_MANY_IMPORTS = "1016"
BULK_EXTRACT = "1029"  # too many jobs in queue / export daily quota exceeded / job already queued
# How long a full queue usually takes to free a slot: an import is polled every 5-30 s, an
# export's status changes at most once a minute.
IMPORT_QUEUE_RETRY_SECONDS = 30.0
EXPORT_QUEUE_RETRY_SECONDS = 60.0


class RequestNotSentError(ServiceUnavailableError):
    """The request never left (no connection, or no token): safe to resend any call."""


class BulkQueueFullError(RateLimitedError):
    """A bulk queue holds its 10 jobs (1016 imports, 1029 exports): nothing was queued. A slot
    frees when a job finishes, in minutes, so the transport does not wait for it; the caller
    tries again after ``retry_after``."""


def _central() -> tzinfo:
    try:
        return ZoneInfo("America/Chicago")
    except ZoneInfoNotFoundError:  # no tz database: standard time is the safe (later) guess
        return timezone(timedelta(hours=-6))


def seconds_until_quota_reset(now: datetime | None = None) -> float:
    """Seconds until the daily quota resets (12:00 AM US Central)."""
    central = (now or datetime.now(UTC)).astimezone(_central())
    midnight = datetime.combine(central.date() + timedelta(days=1), datetime.min.time(), central.tzinfo)
    # Subtract in UTC: aware arithmetic in one zone ignores a DST change in between.
    return (midnight.astimezone(UTC) - central.astimezone(UTC)).total_seconds()


def error_for(code: str, message: str, *, now: datetime | None = None) -> ServiceError:
    """The typed error for a response-level Marketo error."""
    if code == "607" or (code == BULK_EXTRACT and "quota" in message.lower()):
        return QuotaExhaustedError(
            message, service=SERVICE, code=code, retry_after=seconds_until_quota_reset(now)
        )
    if code == TOO_MANY_IMPORTS:
        return BulkQueueFullError(message, service=SERVICE, code=code, retry_after=IMPORT_QUEUE_RETRY_SECONDS)
    if code == BULK_EXTRACT:
        if "already queued" in message.lower():
            return ConflictError(message, service=SERVICE, code=code)
        return BulkQueueFullError(message, service=SERVICE, code=code, retry_after=EXPORT_QUEUE_RETRY_SECONDS)
    return _error_class(code)(message, service=SERVICE, code=code)


def _error_class(code: str) -> type[ServiceError]:
    if code in RATE_CODES:
        return RateLimitedError
    if code in UNAVAILABLE_CODES:
        return ServiceUnavailableError
    if code in AUTH_CODES:
        return AuthExpiredError
    if code in ACCESS_CODES:
        return AccessDeniedError
    if code in NOT_FOUND_CODES:
        return NotFoundError
    if code in CONFLICT_CODES:
        return ConflictError
    if code in UNSUPPORTED_CODES:
        return UnsupportedError
    if code.startswith("6"):
        return PermanentError
    return ValidationError
