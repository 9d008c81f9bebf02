"""Sending one Marketo REST call: limiter slot, bearer token, envelope, retries.

A call is attempted inside a bounded retry budget (tenacity). Each attempt takes a limiter
slot, sends, and reads the envelope; a 601/602 answer renews the token once and resends. What
is retried: 606/615 (rate, concurrency) and the transient 6xx/7xx codes, which Marketo answers
before running anything, so they are safe even for writes; connection failures before the
request left; and, for idempotent calls only, timeouts and HTTP 5xx (the request may have run).
A full bulk queue (BulkQueueFullError) is not waited for here: a slot frees in minutes.

Besides JSON calls, the transport uploads a multipart file (Bulk Lead Import) and downloads a
bulk file as a streamed response (:meth:`Transport.download`), with the same slot, token,
counting and retries; a file that is not there answers HTTP 404 in plain text (NotFoundError).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception

from shared.calls import CallCounter
from shared.errors import (
    AuthExpiredError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServiceUnavailableError,
    TransientError,
)
from shared.marketo.codes import (
    AUTH_CODES,
    NOT_EXECUTED_CODES,
    RATE_WINDOW_CODE,
    SERVICE,
    BulkQueueFullError,
    RequestNotSentError,
    error_for,
)
from shared.marketo.limiter import CallLimiter, RateShareSpentError
from shared.marketo.tokens import TokenCache
from shared.redaction import redact

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
        self._max_rate_wait = max_rate_wait
        self._tokens = tokens
        self._session = session
        self._limiter = limiter
        self._counter = counter
        self._timeout = timeout
        self._budget = retry_budget
        self._clock = clock
        self._sleep = sleep

    def request(self, call: Call) -> dict[str, Any]:
        """The envelope of a successful call; a typed MdsyncError otherwise."""
        return self._retrying(call)(self._checked, call, self._send)

    def download(self, call: Call, *, offset: int = 0) -> requests.Response:
        """A bulk file from byte ``offset`` on, as a streamed response the caller reads and
        closes (HTTP 200, or 206 for a range). A file that is not ready, not there or expired
        answers HTTP 404 with plain text: NotFoundError. A token or limit error comes back as
        the usual JSON envelope and is handled like any call's; retried like any idempotent call."""
        opened: list[requests.Response] = []

        def send(call: Call, token: str) -> dict[str, Any]:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            response = self._exchange(call, token, stream=True, headers=headers)
            if response.status_code in (200, 206) and not _is_json(response):
                opened.append(response)
                return {"success": True}
            try:
                return _file_answer(response, call)
            finally:
                response.close()

        self._retrying(call)(self._checked, call, send)
        return opened[-1]

    def _retrying(self, call: Call) -> Retrying:
        started = self._clock()

        def out_of_budget(state: RetryCallState) -> bool:
            return self._clock() - started >= self._budget

        def wait(state: RetryCallState) -> float:
            remaining = max(self._budget - (self._clock() - started), 0.0)
            return min(_backoff(state), remaining)

        return Retrying(
            retry=retry_if_exception(lambda exc: _retryable(exc, call)),
            stop=out_of_budget,
            wait=wait,
            sleep=self._sleep,
            before_sleep=_log_retry(call),
            reraise=True,
        )

    def _checked(self, call: Call, send: Callable[[Call, str], dict[str, Any]]) -> dict[str, Any]:
        """``send`` with the cached token (a 601/602 renews it once and resends); an error
        envelope raises its typed error."""
        token = self._tokens.get()
        body = send(call, token)
        if _code(body) in AUTH_CODES:
            log.info("marketo %s: token refused (%s), renewing once", call.endpoint, _code(body))
            self._tokens.invalidate(token)
            body = send(call, self._tokens.get())
            if _code(body) in AUTH_CODES:
                code, message = _first_error(body)
                raise AuthExpiredError(message, service=SERVICE, code=code)
        if body.get("success") is not True:
            code, message = _first_error(body)
            if code == RATE_WINDOW_CODE:
                self._slow_down()
            raise error_for(code, message)
        return body

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

    def _send(self, call: Call, token: str) -> dict[str, Any]:
        return _envelope(self._exchange(call, token), call)

    def _exchange(
        self, call: Call, token: str, *, stream: bool = False, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """One HTTP request inside a limiter slot, counted; the response as it came."""
        method, params, form = call.method, list(call.params), None
        if method == "GET" and len(call.path) + len(urlencode(params)) + 1 > MAX_URI:
            # Long queries go as a POST with the query string in a form body (414 otherwise).
            method, form, params = "POST", params, [("_method", "GET")]
        with self._limiter.slot(self._max_rate_wait):
            wall = time.perf_counter()
            try:
                return self._session.request(
                    method,
                    self._base + call.path,
                    params=params or None,
                    data=form,
                    json=call.json_body if form is None and call.files is None else None,
                    files=call.files,
                    headers={"Authorization": f"Bearer {token}", **(headers or {})},
                    timeout=self._timeout,
                    stream=stream,
                )
            except requests.RequestException as exc:
                raise _transport_error(exc) from None
            finally:
                self._counter.record(call.endpoint, time.perf_counter() - wall)


def _envelope(response: requests.Response, call: Call) -> dict[str, Any]:
    status = response.status_code
    if status in (413, 414):
        raise PermanentError(
            f"{call.endpoint}: request too large (HTTP {status})", service=SERVICE, status=status
        )
    if status >= 500:
        raise ServiceUnavailableError(f"{call.endpoint}: HTTP {status}", service=SERVICE, status=status)
    try:
        body = response.json()
    except ValueError:
        body = None
    if status != 200 or not isinstance(body, dict) or "success" not in body:
        raise ServiceUnavailableError(
            f"{call.endpoint}: unexpected answer (HTTP {status})", service=SERVICE, status=status
        )
    return body


def _is_json(response: requests.Response) -> bool:
    return response.headers.get("Content-Type", "").startswith("application/json")


def _file_answer(response: requests.Response, call: Call) -> dict[str, Any]:
    """What a file request answered instead of the file: an envelope (token, limits), or 404."""
    if _is_json(response):
        return _envelope(response, call)
    if response.status_code == 404:
        raise NotFoundError(
            f"{call.endpoint}: {redact(response.text[:200]) or 'not found'}", service=SERVICE, status=404
        )
    if response.status_code >= 500:
        raise ServiceUnavailableError(
            f"{call.endpoint}: HTTP {response.status_code}", service=SERVICE, status=response.status_code
        )
    raise PermanentError(
        f"{call.endpoint}: unexpected answer (HTTP {response.status_code})",
        service=SERVICE,
        status=response.status_code,
    )


def _transport_error(exc: requests.RequestException) -> ServiceUnavailableError:
    kind = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout) or (
        isinstance(exc, requests.ConnectionError) and "NewConnectionError" in repr(exc.args)
    ):
        return RequestNotSentError(f"could not connect: {kind}", service=SERVICE)
    return ServiceUnavailableError(f"request failed: {kind}", service=SERVICE)


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    if body.get("success") is True or not isinstance(errors, list) or not errors:
        return None
    return str(errors[0].get("code")) if isinstance(errors[0], dict) else None


def _first_error(body: dict[str, Any]) -> tuple[str, str]:
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")), redact(str(errors[0].get("message", "")))
    return "", "success=false without errors"


def _retryable(exc: BaseException, call: Call) -> bool:
    if isinstance(exc, RateShareSpentError | BulkQueueFullError):
        return False  # waiting is the caller's to afford: a slot frees in seconds or minutes
    if isinstance(exc, RateLimitedError | RequestNotSentError):
        return True
    if isinstance(exc, ServiceUnavailableError):
        return call.idempotent or exc.code in NOT_EXECUTED_CODES
    return False


def _backoff(state: RetryCallState) -> float:
    """Exponential with jitter; rate limits start higher, as the rolling window needs time."""
    exc = state.outcome.exception() if state.outcome else None
    base = 2.0 if isinstance(exc, RateLimitedError) else 0.5
    delay = min(base * 2.0 ** (state.attempt_number - 1), 16.0) * random.uniform(0.5, 1.0)
    known = exc.retry_after if isinstance(exc, TransientError) and exc.retry_after else 0.0
    return max(delay, known)


def _log_retry(call: Call) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        code = getattr(exc, "code", None) or getattr(exc, "status", None) or type(exc).__name__
        log.info("marketo %s: %s, retry %d in %.1f s", call.endpoint, code, state.attempt_number, wait)

    return before_sleep
