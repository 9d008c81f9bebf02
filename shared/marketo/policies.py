"""The policies of the Marketo client's azure-core pipeline (see shared/marketo/transport.py)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from azure.core.pipeline.policies import HTTPPolicy
from azure.core.pipeline.transport import HttpRequest, HttpResponse

from shared.errors import MdsyncError, RateLimitedError, TransientError
from shared.marketo.codes import AUTH_CODES, RATE_WINDOW_CODE
from shared.marketo.limiter import CallLimiter
from shared.marketo.tokens import TokenCache
from shared.marketo.transport import envelope_code, outcome, retryable
from shared.pipeline import IDEMPOTENT, LABEL, BudgetRetryPolicy, Request, Response, TokenUnavailable

log = logging.getLogger(__name__)

FILE = "mdsync_file"  # the call downloads a file: a 200/206 that is not JSON is the file


class MarketoRetryPolicy(BudgetRetryPolicy):
    """The shared retry policy, reading Marketo's envelope (see the module docstring)."""

    service = "marketo"

    def __init__(self, budget_seconds: float, *, on_rate_limit: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(budget_seconds, **kwargs)
        self._on_rate_limit = on_rate_limit

    def retry_answer(self, response: Response) -> bool:
        context = response.context
        answer = outcome(
            response.http_response.internal_response, str(context.get(LABEL)), file=bool(context.get(FILE))
        )
        context["mdsync_error"] = answer if isinstance(answer, MdsyncError) else None
        if not isinstance(answer, MdsyncError):
            return False
        if getattr(answer, "code", None) == RATE_WINDOW_CODE:
            self._on_rate_limit()
        return retryable(answer, idempotent=bool(context.get(IDEMPOTENT)))

    def wait(self, settings: dict[str, Any], response: Response | None, error: Exception | None) -> float:
        exc = response.context.get("mdsync_error") if response is not None else error
        base = 2.0 if isinstance(exc, RateLimitedError) else 0.5
        attempt = len(settings["history"])
        delay = min(base * 2.0 ** (attempt - 1), 16.0) * random.uniform(0.5, 1.0)
        known = exc.retry_after if isinstance(exc, TransientError) and exc.retry_after else 0.0
        return max(delay, known)

    def within_budget(self, spent: float, wait: float) -> float | None:
        """Marketo's rate window rolls: a last attempt at the budget's end may find room, so the
        wait is cut to what is left rather than skipped."""
        left = self.budget_seconds - spent
        return min(wait, left) if left > 0 else None


class MarketoTokenPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """The cached bearer token; a 601/602 answer renews it once and resends."""

    def __init__(self, tokens: TokenCache) -> None:
        super().__init__()
        self.tokens = tokens

    def send(self, request: Request) -> Response:
        token = self._authorize(request)
        response = self.next.send(request)
        code = envelope_code(response.http_response.internal_response)
        if code in AUTH_CODES:
            log.info("marketo %s: token refused (%s), renewing once", request.context.get(LABEL), code)
            self.tokens.invalidate(token)
            self._authorize(request)
            response = self.next.send(request)
        return response

    def _authorize(self, request: Request) -> str:
        try:
            token = self.tokens.get()
        except TransientError as exc:
            raise TokenUnavailable(exc) from exc  # the REST call was not sent: safe to retry
        request.http_request.headers["Authorization"] = f"Bearer {token}"
        return token


class LimiterPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """Each attempt inside a slot of the client's share of the instance's limits."""

    def __init__(self, limiter: CallLimiter, max_rate_wait: float | None) -> None:
        super().__init__()
        self.limiter = limiter
        self.max_rate_wait = max_rate_wait

    def send(self, request: Request) -> Response:
        with self.limiter.slot(self.max_rate_wait):
            return self.next.send(request)
