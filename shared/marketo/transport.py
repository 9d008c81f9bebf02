"""Sending one Marketo REST call through azure-core's pipeline: envelope, token, limiter, retries.

The pipeline is the Dataverse client's (``shared/pipeline.py``: one retry policy class, counting,
redacted logging, tracing, the shared session) with Marketo's own reading of an answer: Marketo
answers HTTP 200 with ``success: false`` and a code, so the envelope, not the status, says what
happened (:func:`outcome`). The policies (``shared/marketo/policies.py``), in the order a call
passes them:

1. :class:`MarketoRetryPolicy` (a ``BudgetRetryPolicy``). Retried: 606/615 (rate,
   concurrency) and the transient 6xx/7xx codes, which Marketo answers before running anything,
   so they are safe even for writes; connections that never opened; and, for idempotent calls
   only, timeouts and HTTP 5xx (the request may have run). Not retried: a full bulk queue
   (BulkQueueFullError: a slot frees in minutes) and the client's rate share spent
   (RateShareSpentError): waiting is the caller's to afford. The wait: exponential with jitter
   (from 0.5 s, from 2 s after a rate limit, at most 16 s), at least the error's Retry-After,
   cut to what is left of the budget; once the budget is spent, the last error is raised.
2. :class:`MarketoTokenPolicy`: the cached bearer token; a 601/602 answer renews it once and
   resends (then AuthExpiredError).
3. :class:`LimiterPolicy`: each attempt takes a slot of the client's ``CallLimiter`` (its share
   of the instance's 100 calls per 20 s and 10 in flight).
4. ``CountingPolicy``: each attempt counted by endpoint.

Besides JSON calls, the transport uploads a multipart file (Bulk Lead Import) and downloads a
bulk file as a streamed response (:meth:`Transport.download`), with the same slot, token,
counting and retries; a file that is not there answers HTTP 404 in plain text (NotFoundError).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests

from shared.calls import CallCounter
from shared.errors import (
    MdsyncError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceUnavailableError,
)
from shared.marketo.codes import (
    NOT_EXECUTED_CODES,
    SERVICE,
    BulkQueueFullError,
    RequestNotSentError,
    error_for,
)
from shared.marketo.limiter import CallLimiter, RateShareSpentError
from shared.marketo.tokens import TokenCache
from shared.redaction import redact

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpRequest

log = logging.getLogger(__name__)

MAX_URI = 7_000  # Marketo answers 414 above 8 KB; keep a margin for the host and encoding
Params = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Call:
    """One logical REST call. ``endpoint`` is its counting key: the method and the path
    template (``"GET /rest/v1/lead/{id}.json"``), the same keys the simulator counts under."""

    method: str
    path: str
    params: Params = ()
    json_body: Any = None
    idempotent: bool = True
    template: str | None = None
    # A multipart/form-data upload (Bulk Lead Import): part name -> (file name, bytes, type).
    files: dict[str, tuple[str, bytes, str]] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.template or self.path}"


class Transport:
    def __init__(
        self,
        base_url: str,
        *,
        tokens: TokenCache,
        session: requests.Session,
        limiter: CallLimiter,
        counter: CallCounter,
        timeout: float,
        retry_budget: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        max_rate_wait: float | None = None,
    ) -> None:
        self._base = base_url
        self._limiter = limiter
        self.timeout = timeout
        self.retry_budget_seconds = retry_budget
        self.max_rate_wait = max_rate_wait
        # azure-core is imported with the first client, not with this module (cold start).
        from shared.marketo.policies import (  # noqa: PLC0415
            FILE,
            LimiterPolicy,
            MarketoRetryPolicy,
            MarketoTokenPolicy,
        )
        from shared.pipeline import CountingPolicy, build  # noqa: PLC0415

        policies = [
            MarketoRetryPolicy(retry_budget, on_rate_limit=self._slow_down, clock=clock, sleep=sleep),
            MarketoTokenPolicy(tokens),
            LimiterPolicy(limiter, max_rate_wait),
            CountingPolicy(counter),
        ]
        self._pipeline = build(session, policies, options=(FILE,))

    def request(self, call: Call) -> dict[str, Any]:
        """The envelope of a successful call; a typed MdsyncError otherwise."""
        response = self._send(call)
        answer = outcome(response, call.endpoint, file=False)
        if isinstance(answer, MdsyncError):
            raise answer
        assert answer is not None
        return answer

    def download(self, call: Call, *, offset: int = 0) -> requests.Response:
        """A bulk file from byte ``offset`` on, as a streamed response the caller reads and
        closes (HTTP 200, or 206 for a range). A file that is not ready, not there or expired
        answers HTTP 404 with plain text: NotFoundError. A token or limit error comes back as
        the usual JSON envelope and is handled like any call's; retried like any idempotent call."""
        response = self._send(call, file=True, headers={"Range": f"bytes={offset}-"} if offset else None)
        answer = outcome(response, call.endpoint, file=True)
        if answer is None:
            return response
        response.close()
        if isinstance(answer, MdsyncError):
            raise answer
        raise PermanentError(f"{call.endpoint}: answered JSON where a file was expected", service=SERVICE)

    def _send(
        self, call: Call, *, file: bool = False, headers: dict[str, str] | None = None
    ) -> requests.Response:
        from shared.pipeline import kind, send  # noqa: PLC0415

        return send(
            self._pipeline,
            self._http_request(call, headers),
            timeout=self.timeout,
            not_sent=lambda exc: RequestNotSentError(f"could not connect: {kind(exc)}", service=SERVICE),
            no_answer=lambda exc: ServiceUnavailableError(f"request failed: {kind(exc)}", service=SERVICE),
            mdsync_label=call.endpoint,
            mdsync_idempotent=call.idempotent,
            mdsync_file=file,
            stream=file,
        )

    def _http_request(self, call: Call, headers: dict[str, str] | None) -> HttpRequest:
        from azure.core.pipeline.transport import HttpRequest  # noqa: PLC0415

        method, params = call.method, list(call.params)
        form: list[tuple[str, str]] | None = None
        if method == "GET" and len(call.path) + len(urlencode(params)) + 1 > MAX_URI:
            # Long queries go as a POST with the query string in a form body (414 otherwise).
            method, form, params = "POST", params, [("_method", "GET")]
        url = self._base + call.path + (f"?{urlencode(params)}" if params else "")
        request = HttpRequest(method, url, headers=dict(headers or {}))
        if form is not None:
            request.set_bytes_body(urlencode(form).encode("ascii"))
            request.headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif call.files is not None:
            request.files = call.files
        elif call.json_body is not None:
            # As requests sends json=: no NaN (not JSON).
            request.set_bytes_body(json.dumps(call.json_body, allow_nan=False).encode("utf-8"))
            request.headers["Content-Type"] = "application/json"
        return request

    def _slow_down(self) -> None:
        rate = self._limiter.saw_rate_limit()
        if rate is not None:
            log.warning(
                "marketo: instance rate limit exceeded (606), shared with other integrations and "
                "instances; this client now makes at most %d calls per %.0f s (of %d), growing back "
                "while Marketo accepts them",
                rate,
                self._limiter.window,
                self._limiter.max_calls,
            )


def retryable(exc: BaseException, *, idempotent: bool) -> bool:
    if isinstance(exc, RateShareSpentError | BulkQueueFullError):
        return False  # waiting is the caller's to afford: a slot frees in seconds or minutes
    if isinstance(exc, RateLimitedError | RequestNotSentError):
        return True
    if isinstance(exc, ServiceUnavailableError):
        return idempotent or exc.code in NOT_EXECUTED_CODES
    return False


def outcome(response: requests.Response, endpoint: str, *, file: bool) -> dict[str, Any] | MdsyncError | None:
    """What an answer means: the envelope of a success, the typed error, or None for a file."""
    if file and response.status_code in (200, 206) and not _is_json(response):
        return None
    if file and not _is_json(response):
        return _file_error(response, endpoint)
    status = response.status_code
    if status in (413, 414):
        return PermanentError(
            f"{endpoint}: request too large (HTTP {status})", service=SERVICE, status=status
        )
    if status >= 500:
        return ServiceUnavailableError(f"{endpoint}: HTTP {status}", service=SERVICE, status=status)
    body = _json(response)
    if status != 200 or not isinstance(body, dict) or "success" not in body:
        return ServiceUnavailableError(
            f"{endpoint}: unexpected answer (HTTP {status})", service=SERVICE, status=status
        )
    if body.get("success") is not True:
        code, message = _first_error(body)
        return error_for(code, message)
    return body


def envelope_code(response: requests.Response) -> str | None:
    """The first error code of a JSON envelope (None for a success, a file, or no envelope)."""
    if not _is_json(response):
        return None
    body = _json(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or body.get("success") is True
        or not isinstance(errors, list)
        or not errors
    ):
        return None
    return str(errors[0].get("code")) if isinstance(errors[0], dict) else None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _is_json(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").startswith("application/json")


def _file_error(response: requests.Response, endpoint: str) -> MdsyncError:
    """What a file request answered instead of the file, when it is not an envelope."""
    status = response.status_code
    try:
        if status == 404:
            text = redact(response.text[:200]) or "not found"
            return NotFoundError(f"{endpoint}: {text}", service=SERVICE, status=404)
        if status >= 500:
            return ServiceUnavailableError(f"{endpoint}: HTTP {status}", service=SERVICE, status=status)
        return PermanentError(
            f"{endpoint}: unexpected answer (HTTP {status})", service=SERVICE, status=status
        )
    finally:
        response.close()


def _first_error(body: dict[str, Any]) -> tuple[str, str]:
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")), redact(str(errors[0].get("message", "")))
    return "", "success=false without errors"
