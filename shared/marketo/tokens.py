"""The client-credentials access token: fetched once, cached, renewed before it runs out.

Marketo hands out the same token until it expires (asking early only returns it with less
time left), so renewal works like this: within RENEW_MARGIN of expiry the identity endpoint is
asked once; if it answers a new token, that is used; if it answers the same one, that token is
used until it expires and a new one is fetched before the next call. A 601/602 answer (the
token was revoked or the clocks disagree) invalidates it and the caller fetches once more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from shared.calls import CallCounter
from shared.errors import AccessDeniedError, ServiceUnavailableError
from shared.marketo.codes import SERVICE, RequestNotSentError
from shared.marketo.limiter import IDENTITY_ENDPOINT

log = logging.getLogger(__name__)
RENEW_MARGIN = 60.0


@dataclass
class _Cached:
    token: str
    expires_at: float
    renewal_futile: bool = False


class TokenCache:
    def __init__(
        self,
        identity_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session,
        timeout: float,
        counter: CallCounter,
        clock: Callable[[], float],
    ) -> None:
        self._url = identity_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session
        self._timeout = timeout
        self._counter = counter
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Cached | None = None

    def get(self) -> str:
        with self._lock:
            cached = self._cached
            if cached is not None:
                remaining = cached.expires_at - self._clock()
                if remaining > RENEW_MARGIN or (cached.renewal_futile and remaining > 0):
                    return cached.token
            return self._fetch(cached).token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after Marketo refused it (another thread may have renewed already)."""
        with self._lock:
            if self._cached is not None and self._cached.token == token:
                self._cached = None

    def _fetch(self, previous: _Cached | None) -> _Cached:
        params = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        started = self._clock()
        wall = time.perf_counter()
        try:
            response = self._session.get(self._url, params=params, timeout=self._timeout)
        except requests.RequestException as exc:
            # The REST call itself was not sent yet, so it is safe to retry whatever it is.
            raise RequestNotSentError(
                f"identity endpoint unreachable: {type(exc).__name__}", service=SERVICE
            ) from None
        finally:
            self._counter.record(IDENTITY_ENDPOINT, time.perf_counter() - wall)
        body = _json(response)
        if response.status_code in (400, 401, 403):
            raise AccessDeniedError(
                str(body.get("error_description") or "identity endpoint refused the credentials"),
                service=SERVICE,
                code=str(body.get("error") or response.status_code),
                status=response.status_code,
            )
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise ServiceUnavailableError(
                "identity endpoint gave no access token", service=SERVICE, status=response.status_code
            )
        raw_expiry = body.get("expires_in")
        expires_in = float(raw_expiry) if isinstance(raw_expiry, int | float | str) else 0.0
        same = previous is not None and previous.token == token
        self._cached = _Cached(token, started + expires_in, renewal_futile=same)
        log.info("marketo access token %s, expires in %.0f s", "reused" if same else "obtained", expires_in)
        return self._cached


def _json(response: requests.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
