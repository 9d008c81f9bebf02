"""The Dataverse client's HTTP pipeline: azure-core's, built as every Azure SDK client builds it.

Policies, in the order a request passes them (``shared/pipeline.py`` holds what the Marketo
client's pipeline shares; docs/retries.md says which layer retries what):

1. ``HeadersPolicy``: the OData headers (and ``UserAgentPolicy``: ``mdsync``).
2. :class:`DataverseRetryPolicy` (a ``BudgetRetryPolicy``): 408, 429, 5xx and requests that got
   no answer. A request that is not idempotent (a POST create, an action) is retried only when
   Dataverse certainly did not run it: a 429, or a connection that never opened. The wait is
   Retry-After when Dataverse gives one, else 0, 1, 2, 4, 8, 8 ... s; no wait that would cross
   ``retry_budget_seconds`` is started: the last answer goes back to the caller as its error,
   carrying ``retry_after``, for the caller to reschedule.
3. :class:`ReauthorizingBearerPolicy`: azure-core's ``BearerTokenCredentialPolicy`` over an
   azure-identity credential (the token cached until it nears expiry); a 401 drops the token,
   and the credential's own cache when it can (:class:`~shared.dataverse.auth.CredentialTokens`),
   and resends once. A token endpoint that fails for a passing reason is retried like a
   connection that never opened: nothing reached Dataverse.
4. ``CountingPolicy``: every attempt counted by endpoint and timed (``client.calls``), inside a
   concurrency slot (Dataverse allows 52 concurrent requests per user); :class:`RateHeadersPolicy`
   keeps the service-protection headers of the last answer (``client.rate_headers``, the
   console's request window).
5. ``HttpLoggingPolicy`` and ``DistributedTracingPolicy`` (``shared/pipeline.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from json import dumps
from typing import Any
from urllib.parse import urlencode

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, HeadersPolicy, SansIOHTTPPolicy
from azure.core.pipeline.transport import HttpRequest, HttpResponse

from shared.calls import CallCounter, RateHeaders
from shared.dataverse.errors import ConnectionFailed, error_from
from shared.errors import ConfigurationError, MdsyncError, TransientError
from shared.pipeline import (
    IDEMPOTENT,
    BudgetRetryPolicy,
    CountingPolicy,
    Request,
    Response,
    TokenUnavailable,
    build,
    kind,
    send,
)
from shared.redaction import redact

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8
RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
BASE_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
KEEP = "mdsync_keep"  # an error answer let through as it is (a $batch's multipart answer)

Keep = Callable[[requests.Response], bool]


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
        self.rate_headers = RateHeaders()
        self.timeout = timeout
        self.retry_budget_seconds = retry_budget_seconds
        policies = [
            HeadersPolicy(dict(BASE_HEADERS)),
            DataverseRetryPolicy(
                retry_budget_seconds,
                backoff_seconds=BACKOFF_SECONDS,
                max_backoff_seconds=MAX_BACKOFF_SECONDS,
                sleep=sleep,
            ),
            ReauthorizingBearerPolicy(credential, scope),
            CountingPolicy(self.calls, slots=max_concurrency),
            RateHeadersPolicy(self.rate_headers),
        ]
        self._pipeline: Pipeline[HttpRequest, HttpResponse] = build(session, policies, options=(KEEP,))

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
        response = send(
            self._pipeline,
            request,
            timeout=self.timeout,
            not_sent=lambda exc: ConnectionFailed(f"no answer from Dataverse ({kind(exc)})", sent=False),
            no_answer=_no_answer,
            mdsync_label=label,
            mdsync_idempotent=idempotent,
            mdsync_keep=keep,
        )
        if response.status_code >= 400 and not (keep and keep(response)):
            error = error_from(response)
            # The raised error's traceback keeps this frame alive until garbage collection;
            # it must not keep the response (and through it the connection pool) alive too.
            response.close()
            del response
            raise error
        return response


def _no_answer(exc: AzureError) -> MdsyncError:
    if isinstance(exc, ClientAuthenticationError):
        # A bare azure-identity credential refused (CredentialTokens maps this itself).
        return ConfigurationError(f"no Dataverse token: {kind(exc)}: {redact(str(exc))[:200]}")
    return ConnectionFailed(f"no answer from Dataverse ({kind(exc)})", sent=True)


class RateHeadersPolicy(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Every answer's service-protection headers (``x-ms-ratelimit-*``), as they come."""

    def __init__(self, headers: RateHeaders) -> None:
        super().__init__()
        self.headers = headers

    def on_response(self, request: Request, response: Response) -> None:
        self.headers.observe(response.http_response.headers, time.time())


class DataverseRetryPolicy(BudgetRetryPolicy):
    """The shared retry policy, reading an answer by its status (see the module docstring)."""

    service = "dataverse"

    def retry_answer(self, response: Response) -> bool:
        status = response.http_response.status_code
        keep = response.context.get(KEEP)
        if status < 400 or (keep and keep(response.http_response.internal_response)):
            return False
        if not response.context.get(IDEMPOTENT):
            return bool(status == 429)  # refused before it ran
        return status in RETRY_STATUSES


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
