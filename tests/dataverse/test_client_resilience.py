"""Tokens, throttling, server faults and the retry budget, over real HTTPS."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken

from shared.dataverse import odata
from shared.dataverse.auth import CredentialTokens
from shared.dataverse.client import DataverseClient
from shared.errors import (
    AuthExpiredError,
    ConfigurationError,
    RateLimitedError,
    ServiceUnavailableError,
)
from shared.pipeline import WIRE_LOGGER
from simulators.dataverse.admin import DataverseAdmin
from simulators.entra import EntraAdmin
from simulators.tls import TlsFiles

from .conftest import Sims, client_secret_tokens, lead


def test_revoked_token_is_refreshed_once_and_the_call_succeeds(
    client: DataverseClient, entra_admin: EntraAdmin, admin: DataverseAdmin
) -> None:
    client.create("leads", lead())
    entra_admin.reset_calls()
    assert entra_admin.revoke_all() >= 1
    client.create("leads", lead())
    # One 401, one fresh credential and token, one resend.
    assert client.calls["POST leads"] == 3
    assert entra_admin.calls()["POST token"] == 1
    assert len(admin.rows("lead")) == 2


def test_expired_token_is_refreshed(client: DataverseClient, entra_admin: EntraAdmin) -> None:
    client.create("leads", lead())
    # Dataverse's clock moves past the token's exp; the credential's cache still thinks it is fresh.
    entra_admin.advance_clock(3600)
    row = client.create("leads", lead(), select=["leadid"])
    assert row["leadid"]
    assert client.calls["POST leads"] == 3


def test_a_token_rejected_after_refresh_is_auth_expired(
    sims: Sims, http: requests.Session, admin: DataverseAdmin, sleeps: list[float]
) -> None:
    class Stale:
        invalidated = 0

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("not.a.token", int(time.time()) + 3600)

        def invalidate(self) -> None:
            self.invalidated += 1

    stale = Stale()
    client = DataverseClient(sims.api_url, stale, session=http, sleep=sleeps.append)
    with pytest.raises(AuthExpiredError) as caught:
        client.get("leads", "7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c", select=["leadid"])
    assert caught.value.status == 401
    assert stale.invalidated == 1
    assert client.calls["GET leads()"] == 2


def test_unauthenticated_request_gets_the_challenge(
    sims: Sims, http: requests.Session, admin: DataverseAdmin
) -> None:
    response = http.get(f"{sims.api_url}/leads", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith(
        "Bearer authorization_uri=https://login.microsoftonline.com/"
    )
    assert "error" in response.json()


def test_token_for_another_audience_is_rejected(
    sims: Sims, http: requests.Session, tls: TlsFiles, admin: DataverseAdmin
) -> None:
    other = client_secret_tokens(sims, tls, org_url="https://contoso.crm.dynamics.com")
    response = http.get(
        f"{sims.api_url}/leads", headers={"Authorization": f"Bearer {other.get_token().token}"}, timeout=10
    )
    assert response.status_code == 401
    assert "audience" in response.json()["error"]["message"]


def test_wrong_client_secret_is_a_configuration_error(
    sims: Sims, http: requests.Session, tls: TlsFiles, admin: DataverseAdmin
) -> None:
    wrong = client_secret_tokens(sims, tls, secret="wrong-secret-0123")
    with pytest.raises(ConfigurationError) as caught:
        wrong.get_token()
    assert "AADSTS7000215" in str(caught.value)
    assert "wrong-secret-0123" not in str(caught.value)
    assert caught.value.settings[0] == "DATAVERSE_CLIENT_SECRET"


def test_token_endpoint_outage_is_transient(
    sims: Sims, tls: TlsFiles, entra_admin: EntraAdmin, sleeps: list[float]
) -> None:
    provider = client_secret_tokens(sims, tls)
    entra_admin.fail_next(1, status=503)
    with pytest.raises(ServiceUnavailableError) as caught:
        provider.get_token()
    assert caught.value.service == "entra"


def test_throttling_waits_retry_after_then_succeeds(
    client: DataverseClient, admin: DataverseAdmin, sleeps: list[float]
) -> None:
    admin.throttle(2, retry_after=3, path="leads")
    row = client.create("leads", lead(), select=["leadid"])
    assert row["leadid"]
    assert sleeps == [3.0, 3.0]
    assert client.calls["POST leads"] == 3
    assert len(admin.rows("lead")) == 1


def test_throttling_beyond_the_budget_raises_with_retry_after(
    client: DataverseClient, admin: DataverseAdmin, sleeps: list[float]
) -> None:
    admin.throttle(1, retry_after=30, path="leads")
    with pytest.raises(RateLimitedError) as caught:
        client.create("leads", lead())
    assert caught.value.retry_after == 30
    assert caught.value.code == "0x80072322"
    assert sleeps == []


def test_server_errors_are_retried_for_idempotent_calls(
    client: DataverseClient, admin: DataverseAdmin, sleeps: list[float]
) -> None:
    row = client.create("leads", lead(), select=["leadid"])
    admin.fail(2, status=503, path="leads(")
    client.update("leads", row["leadid"], {"jobtitle": "CTO"})
    assert len(sleeps) == 2
    assert all(0 <= s <= 8 for s in sleeps)
    assert client.get("leads", row["leadid"], select=["jobtitle"])["jobtitle"] == "CTO"


def test_server_errors_are_not_retried_for_a_plain_create(
    client: DataverseClient, admin: DataverseAdmin, sleeps: list[float]
) -> None:
    admin.fail(1, status=502, path="leads")
    with pytest.raises(ServiceUnavailableError) as caught:
        client.create("leads", lead())
    assert caught.value.status == 502
    assert sleeps == []


def test_persistent_server_errors_stop_at_the_budget(
    sims: Sims, http: requests.Session, tokens: CredentialTokens, admin: DataverseAdmin
) -> None:
    waited: list[float] = []
    client = DataverseClient(
        sims.api_url, tokens, session=http, retry_budget_seconds=1.0, sleep=waited.append
    )
    admin.fail(100, status=500, path="leads")
    with pytest.raises(ServiceUnavailableError):
        list(client.query("leads", select=["leadid"]))
    # Retries stop before the next wait would cross the budget (waits are recorded, not taken).
    assert sum(waited) < 1.0
    assert client.calls["GET leads"] == len(waited) + 1


def test_connection_refused_is_transient(
    http: requests.Session, tokens: CredentialTokens, sleeps: list[float]
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = DataverseClient(
        f"https://localhost:{port}/api/data/v9.2", tokens, session=http, sleep=sleeps.append
    )
    with pytest.raises(ServiceUnavailableError):
        client.create("leads", lead())
    # Nothing reached the server, so even the create was retried.
    assert len(sleeps) >= 1


def test_request_window_limit_answers_429_with_the_documented_code(
    sims: Sims, http: requests.Session, tokens: CredentialTokens, admin: DataverseAdmin
) -> None:
    admin.set_limits(requests=3, window_seconds=60)
    headers = {"Authorization": f"Bearer {tokens.get_token().token}"}
    statuses = [http.get(f"{sims.api_url}/leads", headers=headers, timeout=10).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = http.get(f"{sims.api_url}/leads", headers=headers, timeout=10)
    assert last.json()["error"] == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 3 over time window of 60 seconds.",
    }
    assert 1 <= int(last.headers["Retry-After"]) <= 60


def test_concurrency_limit_trips_immediately(
    sims: Sims, http: requests.Session, tokens: CredentialTokens, admin: DataverseAdmin
) -> None:
    admin.set_limits(concurrent=2)
    admin.slow(1.0, count=None, path="leads")
    headers = {"Authorization": f"Bearer {tokens.get_token().token}"}
    codes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        response = http.get(f"{sims.api_url}/leads", headers=headers, timeout=10)
        with lock:
            codes.append(response.json()["error"]["code"] if response.status_code == 429 else "ok")

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admin.clear_faults()
    assert codes.count("ok") == 2
    assert codes.count("0x80072326") == 3


def test_the_wire_log_is_off_by_default_and_redacted_when_on(
    client: DataverseClient, caplog: pytest.LogCaptureFixture
) -> None:
    email = "ana.lopez@fabrikam.example"
    with caplog.at_level(logging.INFO, logger="shared"):
        client.create("leads", lead(emailaddress1=email))
    assert [r for r in caplog.records if r.name == WIRE_LOGGER] == []

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=WIRE_LOGGER):
        rows = list(client.query("leads", select=["leadid"], filter=odata.eq("emailaddress1", email)))
    assert len(rows) == 1
    wire = "\n".join(r.getMessage() for r in caplog.records if r.name == WIRE_LOGGER)
    assert "Request URL" in wire
    assert "'Authorization': 'REDACTED'" in wire
    assert "Bearer" not in wire
    assert "fabrikam.example" not in wire
