"""The simulator's identity endpoint, envelope and limits, spoken to over raw HTTPS."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from tests.marketo.conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, Marketo

LEADS = "/rest/v1/leads.json"
DESCRIBE = "/rest/v1/leads/describe.json"


def _identity(m: Marketo, **params: str) -> tuple[int, dict[str, object]]:
    response = m.session.get(f"{m.url}/identity/oauth/token", params=params, timeout=10)
    return response.status_code, response.json()


def _error(response_json: dict[str, object]) -> str:
    assert response_json["success"] is False
    errors = response_json["errors"]
    assert isinstance(errors, list)
    return str(errors[0]["code"])


def test_identity_returns_the_same_token_until_it_expires(timed: Marketo, clock: FakeClock) -> None:
    creds = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    status, first = _identity(timed, **creds)
    assert status == 200
    assert re.fullmatch(r"[0-9a-f-]{36}:sim", str(first["access_token"]))
    assert first["token_type"] == "bearer"
    assert first["expires_in"] in (3599, 3600)
    clock.advance(600)
    _, again = _identity(timed, **creds)
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] in (2999, 3000)
    clock.advance(3000)
    _, renewed = _identity(timed, **creds)
    assert renewed["access_token"] != first["access_token"]


def test_identity_answers_401_on_bad_credentials(marketo: Marketo) -> None:
    status, body = _identity(
        marketo, grant_type="client_credentials", client_id=CLIENT_ID, client_secret="wrong"
    )
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = _identity(marketo, grant_type="client_credentials", client_id="nobody", client_secret="x")
    assert (status, body["error"]) == (401, "invalid_client")


def test_identity_accepts_post_with_query_parameters(marketo: Marketo) -> None:
    response = marketo.session.post(
        f"{marketo.url}/identity/oauth/token",
        params={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


def test_envelope_on_success_has_request_id_and_result(marketo: Marketo) -> None:
    body = marketo.rest("GET", DESCRIBE).json()
    assert re.fullmatch(r"[0-9a-f]+#[0-9a-f]+", body["requestId"])
    assert body["success"] is True
    assert isinstance(body["result"], list)


def test_missing_then_invalid_token(marketo: Marketo) -> None:
    no_token = marketo.session.get(marketo.url + DESCRIBE, timeout=10)
    assert no_token.status_code == 200
    assert _error(no_token.json()) == "600"
    # The deprecated query parameter no longer authenticates.
    token = marketo.token()
    as_query = marketo.session.get(marketo.url + DESCRIBE, params={"access_token": token}, timeout=10)
    assert _error(as_query.json()) == "600"
    assert _error(marketo.rest("GET", DESCRIBE, token="not-a-token").json()) == "601"


def test_expired_token_answers_602_once_then_601(timed: Marketo, clock: FakeClock) -> None:
    token = timed.token()
    clock.advance(3601)
    assert _error(timed.rest("GET", DESCRIBE, token=token).json()) == "602"
    assert _error(timed.rest("GET", DESCRIBE, token=token).json()) == "601"
    assert timed.rest("GET", DESCRIBE).json()["success"] is True  # a fresh token works


def test_admin_expiry_applies_to_live_tokens(marketo: Marketo) -> None:
    token = marketo.token()
    assert marketo.admin.expire_tokens() == 1
    assert _error(marketo.rest("GET", DESCRIBE, token=token).json()) == "602"


def test_unknown_path_610_and_wrong_method_605(marketo: Marketo) -> None:
    assert _error(marketo.rest("GET", "/rest/v1/nothing.json").json()) == "610"
    assert _error(marketo.rest("GET", "/rest/v1/leads/delete.json").json()) == "605"
    assert _error(marketo.rest("PUT", LEADS, json={"input": []}).json()) == "605"


def test_sync_leads_needs_json_content_type_and_valid_json(marketo: Marketo) -> None:
    wrong_type = marketo.rest("POST", LEADS, data="input=1", headers={"Content-Type": "text/plain"})
    assert _error(wrong_type.json()) == "612"
    bad_json = marketo.rest("POST", LEADS, data="{not json", headers={"Content-Type": "application/json"})
    assert _error(bad_json.json()) == "609"


def test_body_over_1_mb_is_http_413(marketo: Marketo) -> None:
    big = {"input": [{"email": f"p{i}@example.com", "title": "x" * 4000} for i in range(300)]}
    response = marketo.rest("POST", LEADS, json=big)
    assert response.status_code == 413


def test_get_uri_over_8_kb_is_http_414(marketo: Marketo) -> None:
    values = ",".join(f"someone.with.a.long.address{i}@example.com" for i in range(250))
    response = marketo.rest("GET", LEADS, params={"filterType": "email", "filterValues": values})
    assert response.status_code == 414


def test_rate_limit_606_and_uncounted_codes(start_marketo: Callable[..., Marketo], clock: FakeClock) -> None:
    m = start_marketo(clock=clock, rate_limit=5)
    token = m.token()
    for _ in range(3):  # answered 601: not counted against the rate limit
        assert _error(m.rest("GET", DESCRIBE, token="bogus").json()) == "601"
    codes = [m.rest("GET", DESCRIBE, token=token).json().get("success") for _ in range(5)]
    assert codes == [True] * 5
    rejected = m.rest("GET", DESCRIBE, token=token).json()
    assert _error(rejected) == "606"
    assert rejected["errors"][0]["message"] == "Max rate limit '5' exceeded with in '20' secs"
    clock.advance(20.5)
    assert m.rest("GET", DESCRIBE, token=token).json()["success"] is True
    calls = m.admin.calls()
    assert calls["byErrorCode"] == {"601": 3, "606": 1}
    assert calls["quotaUsed"] == 7  # 5 + the 606 rejection + 1; the 601s are free


def test_daily_quota_607(marketo: Marketo) -> None:
    marketo.admin.set_quota(daily=2, used=0)
    token = marketo.token()
    assert marketo.rest("GET", DESCRIBE, token=token).json()["success"] is True
    assert marketo.rest("GET", DESCRIBE, token=token).json()["success"] is True
    assert _error(marketo.rest("GET", DESCRIBE, token=token).json()) == "607"


def test_concurrency_615_when_calls_overlap(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(concurrency_limit=2)
    token = m.token()
    # Held long enough that the third call arrives while both are in flight, however loaded.
    m.admin.inject_latency(5000, count=2)
    answers: list[dict[str, object]] = []

    def call() -> None:
        answers.append(m.rest("GET", DESCRIBE, token=token).json())

    slow = [threading.Thread(target=call) for _ in range(2)]
    for t in slow:
        t.start()
    deadline = time.monotonic() + 60
    while m.sim.state.calls()["inFlight"] < 2:
        assert time.monotonic() < deadline, "the two slow calls never were in flight together"
        time.sleep(0.01)
    third = m.rest("GET", DESCRIBE, token=token).json()
    for t in slow:
        t.join()
    assert _error(third) == "615"
    assert all(a["success"] for a in answers)
    assert m.sim.state.calls()["peakInFlight"] == 2


def test_injected_faults_answer_the_next_calls(marketo: Marketo) -> None:
    token = marketo.token()
    marketo.admin.inject_fault("611", count=2)
    assert _error(marketo.rest("GET", DESCRIBE, token=token).json()) == "611"
    assert _error(marketo.rest("GET", DESCRIBE, token=token).json()) == "611"
    assert marketo.rest("GET", DESCRIBE, token=token).json()["success"] is True
    calls = marketo.admin.calls()
    assert calls["quotaUsed"] == 1  # 611 is not counted
    assert calls["byEndpoint"]["GET /rest/v1/leads/describe.json"] == 3


def test_admin_limits_round_trip(marketo: Marketo) -> None:
    assert marketo.admin.limits()["rateLimit"] == 100
    assert marketo.admin.set_limits(rateLimit=50, concurrencyLimit=3)["concurrencyLimit"] == 3
    assert marketo.admin.limits()["rateLimit"] == 50
