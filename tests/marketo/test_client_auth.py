"""MarketoClient token handling against the simulator: cache, proactive renewal, 601/602."""

from __future__ import annotations

import pytest

from shared.errors import AccessDeniedError, AuthExpiredError
from shared.marketo.client import MarketoClient
from tests.marketo.conftest import FakeClock, Marketo

IDENTITY = "GET /identity/oauth/token"
DESCRIBE = "GET /rest/v1/leads/describe.json"


def test_token_is_fetched_once_and_sent_as_bearer_header(marketo: Marketo) -> None:
    client = marketo.client()
    for _ in range(3):
        client.describe_leads()
    assert client.calls[IDENTITY] == 1
    assert client.calls[DESCRIBE] == 3
    assert client.calls.total == 3  # identity calls are not counted, as Marketo does not count them
    assert marketo.admin.calls()["byErrorCode"] == {}


def test_expired_token_602_is_renewed_and_the_call_resent(marketo: Marketo) -> None:
    client = marketo.client()
    client.describe_leads()
    marketo.admin.expire_tokens()
    assert client.describe_leads()
    assert marketo.admin.calls()["byErrorCode"] == {"602": 1}
    assert client.calls[IDENTITY] == 2
    assert client.calls[DESCRIBE] == 3  # the refused attempt was a call too


def test_invalid_token_601_is_renewed(marketo: Marketo) -> None:
    client = marketo.client()
    client.describe_leads()
    marketo.sim.state.tokens.clear()  # the instance forgot every token (e.g. service reset)
    assert client.describe_leads()
    assert marketo.admin.calls()["byErrorCode"] == {"601": 1}


def test_token_refused_twice_raises_auth_expired(marketo: Marketo) -> None:
    client = marketo.client()
    marketo.admin.inject_fault("601", count=2)
    with pytest.raises(AuthExpiredError) as caught:
        client.describe_leads()
    assert caught.value.code == "601"
    assert client.calls[DESCRIBE] == 2  # renewed once, not in a loop


def test_token_is_renewed_before_it_expires(timed: Marketo, clock: FakeClock) -> None:
    client = timed.client()
    client.describe_leads()
    clock.advance(3550)  # 50 s left: within the renewal margin
    client.describe_leads()
    # Marketo returns the same token until it expires, so one renewal attempt is enough...
    assert client.calls[IDENTITY] == 2
    client.describe_leads()
    assert client.calls[IDENTITY] == 2
    clock.advance(60)  # ...and once it has expired, a new one is fetched before the call.
    client.describe_leads()
    assert client.calls[IDENTITY] == 3
    assert timed.admin.calls()["byErrorCode"] == {}  # never sent an expired token


def test_bad_credentials_raise_access_denied(marketo: Marketo) -> None:
    client = MarketoClient(marketo.url, "test-client", "wrong-secret", session=marketo.session)
    with pytest.raises(AccessDeniedError) as caught:
        client.describe_leads()
    assert caught.value.status == 401
    assert "wrong-secret" not in str(caught.value)


def test_base_url_may_be_the_rest_endpoint(marketo: Marketo) -> None:
    client = MarketoClient(
        marketo.url + "/rest", "test-client", "test-secret-0123456789", session=marketo.session
    )
    assert client.describe_leads()
