"""Every way mdsync can fail, in one tree.

    MdsyncError
    ├── ConfigurationError            a setting or mapping is missing or invalid; fix and restart
    ├── TransientError                the request may not have been processed; safe to try again later
    │   ├── RateLimitedError          429 / Marketo 606, 615; a full bulk job queue (1016, 1029);
    │   │                             carries retry_after (seconds) when known
    │   ├── ServiceUnavailableError   5xx, Marketo 604/608/611/713, timeouts, connection failures
    │   ├── AuthExpiredError          token expired or rejected after one refresh (601/602/401)
    │   └── QuotaExhaustedError       Marketo 607 (calls) or 1029 (bulk export bytes): the daily
    │                                 quota is spent; retry_after = until the reset
    ├── PermanentError                the service answered "no"; retrying the same request is useless
    │   ├── ValidationError           the target rejected the values (Dataverse 400 / IsvAborted,
    │   │                             Marketo 1001/1003/1006); **goes to the person's Activity Log**
    │   ├── NotFoundError             the record does not exist (Dataverse 404, Marketo 1004)
    │   ├── ConflictError             precondition failed: ETag mismatch or create-only hit (412),
    │   │                             a bulk job already queued (Marketo 1029)
    │   ├── AccessDeniedError         403 / Marketo 603: the API user lacks a permission
    │   └── UnsupportedError          the subscription lacks the feature (Marketo 703; 1035: a bulk
    │                                 extract filter); ask the vendor, or do without it
    └── BadRequestError               an inbound request (webhook, flow step) is malformed: a 4xx

A ValidationError with code ``mdsync-unsendable`` is raised before anything is sent: a value the
API cannot take as it is (an email with a comma in a Marketo filter, an id that is not an id).

Transient errors are rescheduled by the worker with backoff (honouring ``retry_after``) and
parked after the configured attempts. Permanent errors are not retried blindly: a
ValidationError is written to the person's Activity Log in Marketo and to the sync log, and the
person's next change tries again.
"""

from __future__ import annotations

UNSENDABLE = "mdsync-unsendable"


class MdsyncError(Exception):
    """Root of every error mdsync raises on purpose."""


class ConfigurationError(MdsyncError):
    """A setting or the field mapping is missing or invalid.

    ``settings`` names the app settings at fault (empty when it is not one setting's fault, e.g.
    a mapping file); :attr:`line` is the message on one line, for a log."""

    def __init__(self, message: str, *, settings: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.settings = settings

    @property
    def line(self) -> str:
        return " ".join(part.strip() for part in str(self).splitlines() if part.strip())


class BadRequestError(MdsyncError):
    """An inbound HTTP request is malformed; the message says what is wrong."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ServiceError(MdsyncError):
    """An error answered by (or on the way to) Marketo, Dataverse or Entra ID.

    ``service`` is ``"marketo"``, ``"dataverse"`` or ``"entra"``; ``code`` is the service's own
    error code (Marketo ``"606"``, Dataverse ``"0x80040265"``); ``status`` the HTTP status if any.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.code = code
        self.status = status

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.service}{code}{status}: {self.message}"


class TransientError(ServiceError):
    """Safe to retry later: the service was busy, unreachable, or the token had to be renewed."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, service=service, code=code, status=status)
        self.retry_after = retry_after


class RateLimitedError(TransientError):
    """Throttled: Dataverse 429 (with Retry-After), Marketo 606 or 615."""


class ServiceUnavailableError(TransientError):
    """5xx, timeouts, connection errors, Marketo 604/608/611/713."""


class AuthExpiredError(TransientError):
    """The token was rejected even after one refresh."""


class QuotaExhaustedError(TransientError):
    """Marketo's daily quota is spent (607); it resets at midnight US Central time."""


class PermanentError(ServiceError):
    """The service answered no; the same request will fail again."""


class ValidationError(PermanentError):
    """The target system rejected the values. Logged on the person's Activity Log.

    ``fields`` names the columns/fields involved where known.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        code: str | None = None,
        status: int | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, service=service, code=code, status=status)
        self.fields = fields


class NotFoundError(PermanentError):
    """The addressed record does not exist."""


class ConflictError(PermanentError):
    """A precondition failed: stale ETag, or a create-only write found an existing record."""


class AccessDeniedError(PermanentError):
    """The API user is not allowed to do this."""


class UnsupportedError(PermanentError):
    """The subscription does not have this feature (Marketo 703, 1035)."""
