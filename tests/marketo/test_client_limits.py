"""MarketoClient limits and retries: the client-side limiter, backoff on 606/615 and transient
codes within the retry budget, 607, transport failures, and what is not retried."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.adapters.sqlite_state import SqliteStateStore
from shared.errors import (
    AccessDeniedError,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    ServiceUnavailableError,
    ValidationError,
)
from shared.http import make_session
from shared.marketo.budget import StoredCallWindow
from shared.marketo.client import MarketoClient
from tests.marketo.conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, Marketo

DESCRIBE = "GET /rest/v1/leads/describe.json"


def test_limiter_keeps_the_client_under_the_rate_limit(
    start_marketo: Callable[..., Marketo], clock: FakeClock
) -> None:
    m = start_marketo(clock=clock, rate_limit=10)
    client = m.client(max_calls_per_20s=8)
    for _ in range(30):
        client.describe_leads()
    calls = m.admin.calls()
    assert calls["byErrorCode"] == {}
    assert calls["peakCallsInWindow"] == 8
    assert clock.slept >= 40  # it waited for the window twice (fake time)


def test_606_is_backed_off_and_retried(start_marketo: Callable[..., Marketo], clock: FakeClock) -> None:
    m = start_marketo(clock=clock, rate_limit=10)
    client = m.client(max_calls_per_20s=100, retry_budget_seconds=60)
    for _ in range(25):
        client.describe_leads()
    calls = m.admin.calls()
    assert calls["byErrorCode"]["606"] >= 1
    assert calls["byEndpoint"]["GET /rest/v1/leads/describe.json"] == 25 + calls["byErrorCode"]["606"]


def test_clients_that_share_an_instance_settle_at_its_rate(
    start_marketo: Callable[..., Marketo], clock: FakeClock
) -> None:
    # Two clients each allowed 8 calls per 20 s on an instance that takes 10: like two Function
    # instances of the worker, or mdsync and another integration. Each halves its rate on a 606
    # and grows back slowly, so together they run at the instance's rate. (With fixed shares the
    # same 120 calls met 56 answers 606 and took 327 s.)
    m = start_marketo(clock=clock, rate_limit=10)
    first = m.client(max_calls_per_20s=8, retry_budget_seconds=120)
    second = m.client(max_calls_per_20s=8, retry_budget_seconds=120)
    started = clock.time()
    for _ in range(60):
        first.describe_leads()
        second.describe_leads()
    calls = m.admin.calls()
    assert calls["byEndpoint"][DESCRIBE] - calls["byErrorCode"]["606"] == 120
    assert calls["byErrorCode"]["606"] <= 10
    assert clock.time() - started <= 120 / 10 * 20 * 1.1  # within 10 % of the instance's rate


def test_rate_limit_beyond_the_budget_raises(timed: Marketo, clock: FakeClock) -> None:
    client = timed.client(retry_budget_seconds=10)
    timed.admin.inject_fault("606", count=1000)
    started = clock.time()
    with pytest.raises(RateLimitedError) as caught:
        client.describe_leads()
    assert caught.value.code == "606"
    assert "exceeded" in caught.value.message
    assert clock.time() - started <= 10.5
    assert client.calls[DESCRIBE] >= 2


def test_615_is_retried(timed: Marketo) -> None:
    client = timed.client()
    timed.admin.inject_fault("615", count=2)
    assert client.describe_leads()
    assert client.calls[DESCRIBE] == 3


def test_concurrency_is_capped_by_the_client(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(concurrency_limit=2)
    client = m.client(max_concurrency=2)
    client.describe_leads()  # token first, so the threads only make REST calls
    m.admin.inject_latency(150, count=6)
    m.admin.reset_calls()
    threads = [threading.Thread(target=client.describe_leads) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = m.admin.calls()
    assert calls["byErrorCode"] == {}
    assert calls["peakInFlight"] == 2
    assert calls["byEndpoint"][DESCRIBE] == 6


def test_transient_codes_are_retried_even_for_writes(timed: Marketo) -> None:
    (lead_id,) = timed.admin.seed_persons([{"email": "a@x.com"}])
    client = timed.client()
    timed.admin.inject_fault("611", count=1)
    timed.admin.inject_fault("604", count=1)
    (result,) = client.push_leads([{"email": "new@x.com"}], action="createOnly")
    assert result.status == "created"
    assert len(timed.admin.persons()) == 2
    assert lead_id in [p["id"] for p in timed.admin.persons()]


def test_quota_exhausted_raises_with_the_time_until_midnight_central(
    timed: Marketo, clock: FakeClock
) -> None:
    client = timed.client()
    timed.admin.set_quota(daily=0)
    with pytest.raises(QuotaExhaustedError) as caught:
        client.describe_leads()
    assert caught.value.code == "607"
    assert client.calls[DESCRIBE] == 1  # not retried: the wait is hours
    central = datetime.now(UTC).astimezone(ZoneInfo("America/Chicago"))
    midnight = datetime.combine(central.date() + timedelta(days=1), datetime.min.time(), central.tzinfo)
    expected = (midnight.astimezone(UTC) - datetime.now(UTC)).total_seconds()
    assert caught.value.retry_after is not None
    assert abs(caught.value.retry_after - expected) < 60


@pytest.mark.parametrize(
    ("code", "error"),
    [("603", AccessDeniedError), ("610", PermanentError), ("1003", ValidationError)],
)
def test_envelope_errors_become_typed_errors(marketo: Marketo, code: str, error: type[Exception]) -> None:
    client = marketo.client()
    marketo.admin.inject_fault(code, count=1)
    with pytest.raises(error) as caught:
        client.describe_leads()
    assert getattr(caught.value, "code", None) == code
    assert client.calls[DESCRIBE] == 1


def test_response_level_validation_errors(start_marketo: Callable[..., Marketo]) -> None:
    m = start_marketo(max_filter_matches=2)
    m.admin.seed_persons([{"email": f"{i}@x.com", "msftType": "Lead"} for i in range(3)])
    client = m.client()
    with pytest.raises(ValidationError) as too_many:
        client.get_leads_by_filter("msftType", ["Lead"], ["id"])
    assert too_many.value.code == "1003"
    with pytest.raises(ValidationError) as unsupported:
        client.get_leads_by_filter("firstName", ["Ana"], ["id"])
    assert unsupported.value.code == "1011"


def test_read_timeout_is_retried_for_reads_only(
    start_marketo: Callable[..., Marketo], clock: FakeClock
) -> None:
    m = start_marketo(clock=clock)
    (lead_id,) = m.admin.seed_persons([{"email": "a@x.com"}])
    # A timeout a loaded machine's ordinary call never reaches, a latency well beyond it.
    client = m.client(timeout=3.0)
    type_id = _approved_type(client)
    m.admin.inject_latency(8000, count=1)
    assert client.get_leads_by_ids([lead_id], ["email"]) == [{"email": "a@x.com"}]
    assert client.calls["GET /rest/v1/leads.json"] == 2
    m.admin.inject_latency(8000, count=1)
    record = {
        "leadId": lead_id,
        "activityDate": datetime.now(UTC),
        "activityTypeId": type_id,
        "primaryAttributeValue": "x",
    }
    with pytest.raises(ServiceUnavailableError):
        client.add_custom_activities([record])
    assert client.calls["POST /rest/v1/activities/external.json"] == 1  # may have run: not resent


def _approved_type(client: MarketoClient) -> int:
    from shared.marketo.models import CustomActivityTypeSpec

    spec = CustomActivityTypeSpec("t1", "T one", "T fires", "T fired", ("p", "P"))
    return client.ensure_custom_activity_type(spec)


def test_connection_refused_is_retried_then_raised(clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = MarketoClient(
        f"https://localhost:{port}",
        CLIENT_ID,
        CLIENT_SECRET,
        session=make_session(),
        retry_budget_seconds=5,
        clock=clock.time,
        sleep=clock.sleep,
    )
    with pytest.raises(ServiceUnavailableError) as caught:
        client.describe_leads()
    assert CLIENT_SECRET not in str(caught.value)
    assert client.calls["GET /identity/oauth/token"] >= 2
    assert clock.slept == pytest.approx(5, abs=0.01)  # the whole budget, and no more


def test_four_instances_sharing_one_budget_in_the_state_store_never_see_606(
    start_marketo: Callable[..., Marketo], tmp_path: Path
) -> None:
    # Four worker instances, each allowed the instance's whole rate on its own, take their calls
    # from one rolling window in one state store (each its own connection to it, as processes
    # would). Real time on a short window: 10 calls per 2 s, 5 a second.
    m = start_marketo(rate_limit=10, rate_window_seconds=2)
    path = tmp_path / "state.sqlite3"
    stores = [SqliteStateStore(path) for _ in range(4)]
    clients = [
        m.client(max_calls_per_20s=100, budget=StoredCallWindow(store, "marketo", 10, window=2.0, margin=0.2))
        for store in stores
    ]
    threads = [threading.Thread(target=lambda c=c: [c.describe_leads() for _ in range(10)]) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    calls = m.admin.calls()
    assert calls["byErrorCode"] == {}
    assert calls["byEndpoint"][DESCRIBE] == 40
    for store in stores:
        store.close()
