"""What the Marketo and Dataverse clients' azure-core pipelines share (docs/retries.md).

* :class:`BudgetRetryPolicy`: azure-core's ``RetryPolicy`` (Retry-After honoured: seconds, an
  HTTP date or ``retry-after-ms``; otherwise exponential backoff) with mdsync's two rules. What
  may be sent again: a request that got no answer only if it is idempotent or certainly never
  left (``ServiceRequestError``: no connection, no token); an answer as the subclass reads it
  (Dataverse by its status, Marketo by its envelope). And for how long: at most 10 attempts
  within the call path's budget; when the budget is spent the last answer goes back to the
  caller, mapped to its error with ``retry_after``, and the caller reschedules.
* :class:`RequestOptions`: the per-request facts the policies read (the counting label, whether
  the request is idempotent), moved into the pipeline's context.
* :class:`CountingPolicy`: every attempt counted by endpoint and timed (``client.calls``).
* :class:`TokenUnavailable`: a token request that failed for a passing reason, raised as a
  ``ServiceRequestError`` (nothing was sent) so the retry policy retries it.
* :func:`build`: the pipeline over the process's shared ``requests.Session``, with azure-core's
  ``HttpLoggingPolicy`` (a line per request and response on ``mdsync.http`` at INFO, off unless
  someone turns it on; header and query values redacted unless allowlisted) and
  ``DistributedTracingPolicy`` (a span per request when a tracer is configured).

The clients import their pipeline when they are built, not when they are imported: azure-core's
import is cold-start time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests
from azure.core.exceptions import AzureError, ServiceRequestError
from azure.core.pipeline import Pipeline, PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    DistributedTracingPolicy,
    HttpLoggingPolicy,
    HTTPPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpRequest, HttpResponse, RequestsTransport

from shared.calls import CallCounter
from shared.errors import MdsyncError
from shared.redaction import redact

log = logging.getLogger(__name__)
# azure-core's request/response lines: off (WARNING) unless someone sets this logger to INFO.
WIRE_LOGGER = "mdsync.http"
logging.getLogger(WIRE_LOGGER).setLevel(logging.WARNING)

MAX_ATTEMPTS = 10
# What a request tells the policies; moved out of the options before requests sees them.
LABEL, IDEMPOTENT = "mdsync_label", "mdsync_idempotent"

Request = PipelineRequest[HttpRequest]
Response = PipelineResponse[HttpRequest, HttpResponse]


def build(
    session: requests.Session, policies: Sequence[Any], *, options: Sequence[str] = ()
) -> Pipeline[Any, Any]:
    """The pipeline: ``policies`` between the request options and the logging and tracing
    policies, over azure-core's RequestsTransport on ``session``. The session's trust (the
    simulators' CA file, or the system's) is the transport's: azure-core would otherwise send
    ``verify=True`` with every request, over the session's."""
    transport = RequestsTransport(session=session, session_owner=False, connection_verify=session.verify)
    return Pipeline(
        transport,
        [
            RequestOptions((LABEL, IDEMPOTENT, *options)),
            UserAgentPolicy("mdsync"),
            *policies,
            HttpLoggingPolicy(logger=logging.getLogger(WIRE_LOGGER)),
            DistributedTracingPolicy(),
        ],
    )


def send(
    pipeline: Pipeline[Any, Any],
    request: HttpRequest,
    *,
    timeout: float,
    not_sent: Callable[[AzureError], MdsyncError],
    no_answer: Callable[[AzureError], MdsyncError],
    **options: Any,
) -> requests.Response:
    """``request`` through ``pipeline``, ``timeout`` seconds per attempt; the answer as requests
    gave it, whatever its status (the client reads it). Raised, once the retries are over: a
    token the credential could not get, its own error; ``not_sent(exc)`` for a request that
    never left; ``no_answer(exc)`` for one that got no answer (or any other azure-core error)."""
    try:
        answer = pipeline.run(request, connection_timeout=timeout, read_timeout=timeout, **options)
    except TokenUnavailable as exc:
        raise exc.error from None
    except ServiceRequestError as exc:
        raise not_sent(exc) from exc
    except AzureError as exc:
        raise no_answer(exc) from exc
    response: requests.Response = answer.http_response.internal_response
    return response


class RequestOptions(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Moves mdsync's per-request options into the context, where every policy reads them on
    every attempt, and out of the options azure-core hands on to ``requests``."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = tuple(names)

    def on_request(self, request: Request) -> None:
        for name in self.names:
            request.context[name] = request.context.options.pop(name, None)


class BudgetRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's RetryPolicy with mdsync's rules (see the module docstring). Subclasses say
    which answers are worth another attempt (:meth:`retry_answer`) and how long to wait
    (:meth:`wait`); ``clock`` and ``sleep`` are injectable so tests drive time."""

    service = ""

    def __init__(
        self,
        budget_seconds: float,
        *,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        retries = MAX_ATTEMPTS - 1
        super().__init__(
            retry_total=retries,
            retry_connect=retries,
            retry_read=retries,
            retry_status=retries,
            retry_backoff_factor=backoff_seconds,
            retry_backoff_max=max_backoff_seconds,
        )
        self.budget_seconds = budget_seconds
        self._clock = clock
        self._sleep = sleep

    # --- what is retried ---------------------------------------------------------------------

    def retry_answer(self, response: Response) -> bool:
        """Whether this answer is worth another attempt (the request as the service answered it)."""
        raise NotImplementedError

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        # The answer is read first, whatever is left: reading it may teach the client something
        # (Marketo's 606 slows its limiter down).
        return self.retry_answer(response) and bool(settings["total"])

    def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
        return True  # whether a request may be sent again is decided in increment()

    # --- for how long ------------------------------------------------------------------------

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings.update(started=self._clock(), slept=0.0, wait=0.0)
        return settings

    def wait(self, settings: dict[str, Any], response: Response | None, error: Exception | None) -> float:
        """Seconds before the next attempt: Retry-After when the answer has one, else backoff."""
        hinted = self.get_retry_after(response) if response is not None else None
        return float(hinted) if hinted is not None else float(self.get_backoff_time(settings))

    def within_budget(self, spent: float, wait: float) -> float | None:
        """The wait to make, or None when the budget does not allow another attempt: here, none
        that would cross the budget (the caller gets the last answer now, not later)."""
        return wait if spent + wait < self.budget_seconds else None

    def increment(self, settings: dict[str, Any], response: Any = None, error: Any = None) -> bool:
        context = response.context if response is not None else None
        if error is not None and not (
            (context and context.get(IDEMPOTENT)) or isinstance(error, ServiceRequestError)
        ):
            return False  # it may have run: only the caller knows whether to send it again
        if not super().increment(settings, response=response, error=error):
            return False
        answered = response if error is None else None
        spent = max(self._clock() - settings["started"], settings["slept"])
        wait = self.within_budget(spent, self.wait(settings, answered, error))
        if wait is None:
            return False  # the caller gets the last answer, and reschedules
        settings["wait"] = wait
        label = context.get(LABEL) if context else ""
        what = redact(str(error)) if error is not None else f"HTTP {response.http_response.status_code}"
        log.info(
            "%s %s: %s; attempt %d, retrying in %.1fs",
            self.service,
            label,
            what,
            len(settings["history"]),
            wait,
        )
        return True

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        wait = float(settings["wait"])
        settings["slept"] += wait
        self._sleep(wait)  # 0 for the first retry of a fault without Retry-After, as azure-core does


class TokenUnavailable(ServiceRequestError):
    """No token for a passing reason (the token endpoint busy or unreachable): nothing was sent."""

    def __init__(self, error: MdsyncError) -> None:
        super().__init__(str(error))
        self.error = error


class CountingPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """Every attempt counted by endpoint (the request's label) and timed."""

    def __init__(self, calls: CallCounter, *, slots: int | None = None) -> None:
        super().__init__()
        self.calls = calls
        self._slots = threading.BoundedSemaphore(slots) if slots else None

    def send(self, request: Request) -> Response:
        label = request.context.get(LABEL) or request.http_request.method
        started = time.perf_counter()
        if self._slots is not None:
            self._slots.acquire()
        try:
            return self.next.send(request)
        finally:
            self.calls.record(label, time.perf_counter() - started)
            if self._slots is not None:
                self._slots.release()


def kind(exc: AzureError) -> str:
    """The name of what went wrong underneath (``ConnectTimeout``), for a message."""
    return type(exc.inner_exception or exc).__name__
