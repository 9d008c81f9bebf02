"""azure-core errors from Table Storage, mapped to mdsync's error tree.

The SDK has already retried (its RetryPolicy covers 408, 429, 5xx and connection errors) by the
time one of these reaches us, so a transient one here means "give up for now, try later".

    ServiceRequestError (not sent), ServiceResponseError (no answer)  -> ServiceUnavailableError
    429, 503 ServerBusy                                              -> RateLimitedError
    408, other 5xx                                                   -> ServiceUnavailableError
    401 (token rejected)                                             -> AuthExpiredError
    wrong account key, no usable credential                          -> ConfigurationError
    403                                                              -> AccessDeniedError
    404                                                              -> NotFoundError
    409, 412                                                         -> ConflictError
    other 4xx                                                        -> PermanentError
"""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.errors import (
    AccessDeniedError,
    AuthExpiredError,
    ConfigurationError,
    ConflictError,
    MdsyncError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceUnavailableError,
)

SERVICE = "tables"


def error_code(exc: AzureError) -> str | None:
    code = getattr(exc, "error_code", None)
    if code is None:
        return None
    return str(getattr(code, "value", code))


def _message(exc: AzureError) -> str:
    # The SDK appends "ErrorCode:..." and request ids on further lines; the first line says it.
    text = str(getattr(exc, "message", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _retry_after(exc: HttpResponseError) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_tables_error(exc: AzureError) -> MdsyncError:
    code = error_code(exc)
    message = _message(exc)
    if isinstance(exc, ClientAuthenticationError):
        return _authentication(exc, code, message)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _by_status(exc, exc.status_code, code, message)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return ServiceUnavailableError(message, service=SERVICE, code=type(exc).__name__)
    return ServiceUnavailableError(message, service=SERVICE, code=code or type(exc).__name__)


def _authentication(exc: ClientAuthenticationError, code: str | None, message: str) -> MdsyncError:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "CredentialUnavailableError" in names or code == "AuthenticationFailed":
        return ConfigurationError(
            f"Table Storage rejected the credential ({code or type(exc).__name__}): {message}. "
            "Check STATE_CONNECTION_STRING or the identity behind STATE_TABLE_ENDPOINT."
        )
    return AuthExpiredError(message, service=SERVICE, code=code, status=exc.status_code)


def _by_status(exc: HttpResponseError, status: int, code: str | None, message: str) -> MdsyncError:
    if status == 429 or (status == 503 and code == "ServerBusy"):
        return RateLimitedError(
            message, service=SERVICE, code=code, status=status, retry_after=_retry_after(exc)
        )
    if status == 408 or status >= 500:
        return ServiceUnavailableError(
            message, service=SERVICE, code=code, status=status, retry_after=_retry_after(exc)
        )
    if status == 401:
        return AuthExpiredError(message, service=SERVICE, code=code, status=status)
    if status == 403:
        return AccessDeniedError(message, service=SERVICE, code=code, status=status)
    if status == 404:
        return NotFoundError(message, service=SERVICE, code=code, status=status)
    if status in (409, 412):
        return ConflictError(message, service=SERVICE, code=code, status=status)
    return PermanentError(message, service=SERVICE, code=code, status=status)
