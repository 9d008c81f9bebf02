"""The Dataverse client's HTTP pipeline: azure-core's, built as every Azure SDK client builds it.

Policies, in the order a request passes them (docs/retries.md says which layer retries what):

1. ``HeadersPolicy`` and ``UserAgentPolicy``: the OData headers, ``mdsync``.
2. :class:`BudgetRetryPolicy`: azure-core's ``RetryPolicy`` (Retry-After honoured, in seconds,
   an HTTP date or ``retry-after-ms``; otherwise exponential backoff) with mdsync's rules for
   what and how long. Retried: 408, 429, 5xx and requests that got no answer. A request that is
   not idempotent (a POST create, an action) is retried only when Dataverse certainly did not
   run it: a 429, or a connection that never opened. The budget: when the next wait would cross
   ``retry_budget_seconds`` (or after 10 attempts), the last answer goes back to the caller as
   its error, carrying ``retry_after``, for the caller to reschedule.
3. :class:`ReauthorizingBearerPolicy`: azure-core's ``BearerTokenCredentialPolicy`` over an
   azure-identity credential (the token cached until it nears expiry); a 401 drops the token,
   and the credential's own cache when it can (:class:`~shared.dataverse.auth.CredentialTokens`),
   and resends once. A token endpoint that fails for a passing reason is retried like a
   connection that never opened: nothing reached Dataverse.
4. :class:`CountingPolicy`: every attempt counted by endpoint and timed (``client.calls``),
   inside a concurrency slot (Dataverse allows 52 concurrent requests per user).
5. ``HttpLoggingPolicy``: a line per request and response on the logger ``mdsync.http`` at INFO,
   which is off unless someone turns it on; header and query values are redacted unless
   allowlisted (and every log record passes ``shared.redaction`` too).
6. ``DistributedTracingPolicy``: a span per request when a tracer is configured.

The transport is azure-core's ``RequestsTransport`` over the process's shared
``requests.Session`` (its pool; the CA file of the local simulators). The client imports this
module when it is built, not when it is imported: azure-core's import is cold-start time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from json import dumps
from typing import Any
from urllib.parse import urlencode

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError, ServiceRequestError
from azure.core.pipeline import Pipeline, PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    HTTPPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpRequest, HttpResponse, RequestsTransport

from shared.calls import CallCounter
from shared.dataverse.errors import ConnectionFailed, error_from
from shared.errors import ConfigurationError, MdsyncError, TransientError
from shared.redaction import redact

log = logging.getLogger(__name__)
# azure-core's request/response lines: off (WARNING) unless someone sets this logger to INFO.
WIRE_LOGGER = "mdsync.http"
logging.getLogger(WIRE_LOGGER).setLevel(logging.WARNING)

MAX_ATTEMPTS = 10
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8
RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
BASE_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
# What a request tells the policies; moved out of the options before requests sees them.
_OPTIONS = ("mdsync_label", "mdsync_idempotent", "mdsync_keep")

Keep = Callable[[requests.Response], bool]
Request = PipelineRequest[HttpRequest]
Response = PipelineResponse[HttpRequest, HttpResponse]


class DataversePipeline:
    """Sends one Dataverse request; answers 2xx/3xx, or raises the mapped error
    (shared/dataverse/errors.py)."""

    def __init__(
        self,
        credential: TokenCredential,
        scope: str,
        session: requests.Session,
        *,
        max_concurrency: int,
        timeout: float,
        retry_budget_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.calls = CallCounter()
        self.timeout = timeout
        self.retry_budget_seconds = retry_budget_seconds
        policies: list[Any] = [
            RequestOptions(),
            HeadersPolicy(dict(BASE_HEADERS)),
            UserAgentPolicy("mdsync"),
            BudgetRetryPolicy(retry_budget_seconds, sleep=sleep),
            ReauthorizingBearerPolicy(credential, scope),
            CountingPolicy(self.calls, max_concurrency),
            HttpLoggingPolicy(logger=logging.getLogger(WIRE_LOGGER)),
            DistributedTracingPolicy(),
        ]
        # The session's trust (the simulators' CA file, or the system's) is the transport's:
        # azure-core would otherwise pass verify=True on every request, over the session's.
        transport = RequestsTransport(session=session, session_owner=False, connection_verify=session.verify)
        self._pipeline: Pipeline[HttpRequest, HttpResponse] = Pipeline(transport, policies)

    def request(
        self,
        method: str,
        url: str,
        *,
        label: str,
        idempotent: bool,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        keep: Keep | None = None,
    ) -> requests.Response:
        """``keep`` lets an error answer through as is (a ``$batch`` that stopped at a failing
        part answers with that part's status, and its multipart body is still the result)."""
        if params:
            # Encoded as requests encodes params= (azure-core's format_parameters does not encode).
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(list(params.items()))}"
        request = HttpRequest(method, url, headers=dict(headers or {}))
        if json is not None:
            # As requests sends json=: UTF-8, and no NaN (not JSON).
            request.set_bytes_body(dumps(json, allow_nan=False).encode("utf-8"))
            request.headers["Content-Type"] = "application/json; charset=utf-8"
        elif data is not None:
            request.set_bytes_body(data)
        try:
            answer = self._pipeline.run(
                request,
                mdsync_label=label,
                mdsync_idempotent=idempotent,
                mdsync_keep=keep,
                connection_timeout=self.timeout,
                read_timeout=self.timeout,
            )
        except TokenUnavailable as exc:
            raise exc.error from None
        except ClientAuthenticationError as exc:
            # A bare azure-identity credential refused (CredentialTokens maps this itself).
            raise ConfigurationError(f"no Dataverse token: {_kind(exc)}: {redact(str(exc))[:200]}") from None
        except ServiceRequestError as exc:
            raise ConnectionFailed(f"no answer from Dataverse ({_kind(exc)})", sent=False) from exc
        except AzureError as exc:
            raise ConnectionFailed(f"no answer from Dataverse ({_kind(exc)})", sent=True) from exc
        response: requests.Response = answer.http_response.internal_response
        if response.status_code >= 400 and not (keep and keep(response)):
            error = error_from(response)
            # The raised error's traceback keeps this frame alive until garbage collection;
            # it must not keep the response (and through it the connection pool) alive too.
            response.close()
            del response, answer
            raise error
        return response


class RequestOptions(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Moves mdsync's per-request options into the context, where every policy reads them on
    every attempt, and out of the options azure-core hands on to ``requests``."""

    def on_request(self, request: Request) -> None:
        for name in _OPTIONS:
            request.context[name] = request.context.options.pop(name, None)


class BudgetRetryPolicy(RetryPolicy):  # type: ignore[type-arg]  # generic over the request type only in stubs
    """azure-core's RetryPolicy with mdsync's rules for what is retried and for how long (see
    the module docstring). ``sleep`` is injectable so tests see the waits without waiting."""

    def __init__(self, budget_seconds: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
        retries = MAX_ATTEMPTS - 1
        super().__init__(
            retry_total=retries,
            retry_connect=retries,
            retry_read=retries,
            retry_status=retries,
            retry_backoff_factor=BACKOFF_SECONDS,
            retry_backoff_max=MAX_BACKOFF_SECONDS,
        )
        self.budget_seconds = budget_seconds
        self._sleep = sleep

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings.update(started=time.monotonic(), slept=0.0, wait=0.0)
        return settings

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        status = response.http_response.status_code
        keep = response.context.get("mdsync_keep")
        if status < 400 or (keep and keep(response.http_response.internal_response)):
            return False
        if not response.context.get("mdsync_idempotent"):
            return bool(status == 429)  # refused before it ran
        return status in RETRY_STATUSES

    def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
        return True  # whether a request may be sent again is decided in increment()

    def increment(self, settings: dict[str, Any], response: Any = None, error: Any = None) -> bool:
        context = response.context if response is not None else None
        idempotent = bool(context and context.get("mdsync_idempotent"))
        if error is not None and not (idempotent or isinstance(error, ServiceRequestError)):
            return False  # it may have run: only the caller knows whether to send it again
        if not super().increment(settings, response=response, error=error):
            return False
        wait = self._wait(settings, response if error is None else None)
        spent = max(time.monotonic() - settings["started"], settings["slept"])
        if spent + wait >= self.budget_seconds:
            return False  # the caller gets the last answer, and reschedules
        settings["wait"] = wait
        label = context.get("mdsync_label") if context else ""
        what = redact(str(error)) if error is not None else f"HTTP {response.http_response.status_code}"
        log.info(
            "dataverse %s: %s; attempt %d, retrying in %.1fs", label, what, len(settings["history"]), wait
        )
        return True

    def _wait(self, settings: dict[str, Any], response: Any) -> float:
        hinted = self.get_retry_after(response) if response is not None else None
        return float(hinted) if hinted is not None else float(self.get_backoff_time(settings))

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        wait = float(settings["wait"])
        settings["slept"] += wait
        self._sleep(wait)  # 0 for the first retry of a fault without Retry-After, as azure-core does


class TokenUnavailable(ServiceRequestError):
    """No token for a passing reason (Entra ID busy or unreachable): nothing was sent."""

    def __init__(self, error: MdsyncError) -> None:
        super().__init__(str(error))
        self.error = error


class ReauthorizingBearerPolicy(BearerTokenCredentialPolicy[HttpRequest, HttpResponse]):
    """A bearer token from the credential; a 401 gets a new token and one resend."""

    def on_request(self, request: Request) -> None:
        request.context["enforce_https"] = False  # Dataverse is HTTPS; a test server may not be
        try:
            super().on_request(request)
        except TransientError as exc:
            raise TokenUnavailable(exc) from exc

    def on_challenge(self, request: Request, response: Response) -> bool:
        invalidate = getattr(self._credential, "invalidate", None)
        if callable(invalidate):
            invalidate()  # the credential's own cache would hand back the refused token
        log.info("dataverse refused the access token (401); resending once with a new one")
        try:
            self.authorize_request(request, *self._scopes)
        except TransientError as exc:
            raise TokenUnavailable(exc) from exc
        return True

    def send(self, request: Request) -> Response:
        response = super().send(request)
        answer = response.http_response
        if answer.status_code == 401 and "WWW-Authenticate" not in answer.headers:
            # Dataverse sends its challenge with every 401; without one, still one new token.
            self._token = None
            if self.on_challenge(request, response):
                response = self.next.send(request)
        return response


class CountingPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """Every attempt counted by endpoint and timed, inside a concurrency slot."""

    def __init__(self, calls: CallCounter, max_concurrency: int) -> None:
        super().__init__()
        self.calls = calls
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def send(self, request: Request) -> Response:
        label = request.context.get("mdsync_label") or request.http_request.method
        started = time.monotonic()
        with self._slots:
            try:
                response = self.next.send(request)
            finally:
                self.calls.record(label, time.monotonic() - started)
        log.debug("dataverse %s -> %s", label, response.http_response.status_code)
        return response


def _kind(exc: AzureError) -> str:
    return type(exc.inner_exception or exc).__name__
