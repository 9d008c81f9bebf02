"""Access tokens for Dataverse: client credentials through msal (its cache), refreshable on 401."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import msal
import msal.exceptions
import requests

from shared.errors import ConfigurationError, RateLimitedError, ServiceUnavailableError

log = logging.getLogger(__name__)

# Entra answers that mean the app registration or the settings are wrong, not a passing fault.
_CONFIGURATION_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_scope",
        "invalid_resource",
        "invalid_request",
        "invalid_tenant",
        "unsupported_grant_type",
    }
)


class TokenProvider(Protocol):
    def get_token(self) -> str:
        """A bearer token that is valid now (from cache when possible)."""

    def invalidate(self) -> None:
        """Forget the cached token: the next get_token asks Entra ID for a new one."""


class MsalTokenProvider:
    """Client-credentials tokens for ``scope`` (``{org}/.default``) from ``authority``.

    msal's own cache serves repeated calls; :meth:`invalidate` drops the cached access tokens
    after Dataverse refused one (revoked, clock skew), so the next call fetches a fresh token.
    """

    def __init__(
        self,
        authority: str,
        client_id: str,
        client_secret: str,
        scope: str,
        *,
        session: requests.Session,
    ) -> None:
        self.scope = scope
        self._cache = msal.TokenCache()
        self._lock = threading.Lock()
        try:
            self._app = msal.ConfidentialClientApplication(
                client_id,
                client_credential=client_secret,
                authority=authority,
                instance_discovery=False,
                http_client=session,
                token_cache=self._cache,
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Dataverse authority {authority!r}: {exc}") from exc

    def get_token(self) -> str:
        with self._lock:
            try:
                result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self.scope])
            except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
                # msal raises on 5xx answers and lets connection errors through.
                raise ServiceUnavailableError(
                    f"token request failed: {type(exc).__name__}", service="entra"
                ) from exc
            except ValueError as exc:
                # The authority's OpenID configuration was refused (unknown tenant, bad URL).
                raise ConfigurationError(f"Entra ID authority rejected: {exc}") from exc
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        raise _token_error(result)

    def invalidate(self) -> None:
        with self._lock:
            kind = msal.TokenCache.CredentialType.ACCESS_TOKEN
            for item in list(self._cache.search(kind)):
                self._cache.remove_at(item)
        log.info("dataverse access token dropped; the next call fetches a new one")


def _token_error(result: dict[str, Any]) -> Exception:
    error = str(result.get("error") or "unknown_error")
    codes = result.get("error_codes") or []
    code = f"AADSTS{codes[0]}" if codes else error
    # The first line of error_description names the problem; the rest is trace ids.
    description = str(result.get("error_description") or error).split(" Trace ID:")[0]
    if error in _CONFIGURATION_ERRORS:
        return ConfigurationError(f"Entra ID refused the Dataverse token request ({code}): {description}")
    if error in ("temporarily_unavailable", "server_error"):
        return ServiceUnavailableError(description, service="entra", code=code)
    if "throttl" in description.lower() or error == "too_many_requests":
        return RateLimitedError(description, service="entra", code=code)
    return ServiceUnavailableError(description, service="entra", code=code)
