"""The one I/O seam of the Dataverse client: send, count, refresh on 401, retry within a budget.

Send with a bearer token; a 401 drops the cached token and resends once (then AuthExpiredError).
Throttling (429) waits what Retry-After says; 5xx, timeouts and connection failures wait a
jittered exponential backoff. Everything retried stays inside ``retry_budget_seconds``: when
the next wait would cross it, the last error is raised (carrying ``retry_after``) for the caller
to reschedule. Requests that are not idempotent (a POST create, an action) are retried only when
the service certainly did not run them: 429, or a connection that never opened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3.exceptions
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from shared.calls import CallCounter, RateHeaders
from shared.dataverse.auth import TokenProvider
from shared.dataverse.errors import SERVICE, error_from
from shared.errors import RateLimitedError, ServiceUnavailableError
from shared.redaction import redact

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
_BASE_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


class ConnectionFailed(ServiceUnavailableError):
    """No answer: timeout or connection error. ``sent`` is False when the connection never
    opened, so even a non-idempotent request may be sent again."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message, service=SERVICE)
        self.sent = sent


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class _Budget(stop_base):
    """Stop when the next wait would cross the budget. Time spent is the wall clock, or the
    waits asked for when ``sleep`` does not really sleep (tests): the rule holds for both."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, retry_state: RetryCallState) -> bool:
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + retry_state.upcoming_sleep >= self.seconds


class Transport:
    def __init__(
        self,
        tokens: TokenProvider,
        session: requests.Session,
        *,
        max_concurrency: int,
        timeout: float,
        retry_budget_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tokens = tokens
        self.session = session
        self.timeout = timeout
        self.retry_budget_seconds = retry_budget_seconds
        self.calls = CallCounter()
        self.rate_headers = RateHeaders()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._sleep = sleep
        self._backoff = wait_random_exponential(multiplier=0.5, max=8)

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
        keep: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        """Send until answered 2xx/3xx, or raise the mapped error (see shared/dataverse/errors.py).

        ``keep`` lets an error answer through as is (a ``$batch`` that stopped at a failing part
        answers with that part's status, and its multipart body is still the result)."""
        refreshed = False

        def attempt() -> requests.Response:
            nonlocal refreshed
            response = self._send(method, url, label, params=params, json=json, data=data, headers=headers)
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self.tokens.invalidate()
                response = self._send(
                    method, url, label, params=params, json=json, data=data, headers=headers
                )
            if response.status_code >= 400 and not (keep and keep(response)):
                error = error_from(response)
                # The raised error's traceback keeps this frame alive until garbage collection;
                # it must not keep the response (and through it the connection pool) alive too.
                response.close()
                del response
                raise error
            return response

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, RateLimitedError):
                return True
            if isinstance(exc, ConnectionFailed):
                return idempotent or not exc.sent
            if isinstance(exc, ServiceUnavailableError):
                # A token endpoint failure means nothing reached Dataverse yet.
                return idempotent or exc.service == "entra"
            return False

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            wait=self._wait,
            stop=stop_after_attempt(MAX_ATTEMPTS) | _Budget(self.retry_budget_seconds),
            sleep=self._sleep,
            before_sleep=lambda state: _log_retry(label, state),
            reraise=True,
        )
        return retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        if isinstance(hinted, int | float):
            return float(hinted)
        return float(self._backoff(state))

    def _send(
        self,
        method: str,
        url: str,
        label: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        token = self.tokens.get_token()
        merged = {**_BASE_HEADERS, "Authorization": f"Bearer {token}", **(headers or {})}
        if json is not None:
            merged.setdefault("Content-Type", "application/json; charset=utf-8")
        started = time.monotonic()
        with self._slots:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=merged,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise ConnectionFailed(
                    f"no answer from Dataverse ({type(exc).__name__})", sent=not _never_sent(exc)
                ) from exc
            finally:
                self.calls.record(label, time.monotonic() - started)
        self.rate_headers.observe(response.headers, time.time())
        log.debug("dataverse %s -> %s", label, response.status_code)
        return response


def _log_retry(label: str, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.info(
        "dataverse %s: %s; attempt %d, retrying in %.1fs",
        label,
        redact(str(exc)),
        state.attempt_number,
        state.upcoming_sleep,
    )
