"""Pure rules of the Marketo client and simulator, checked with hypothesis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import (
    AccessDeniedError,
    AuthExpiredError,
    ConflictError,
    NotFoundError,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    ServiceUnavailableError,
    UnsupportedError,
    ValidationError,
)
from shared.mapping import load_mapping, parse_mapping
from shared.marketo.client import BATCH, MAX_BODY_BYTES, _write_chunks
from shared.marketo.codes import BulkQueueFullError, error_for, seconds_until_quota_reset
from shared.marketo.limiter import CallLimiter, RateShareSpentError
from shared.marketo.models import Activity
from simulators.marketo.activities import Cursor
from simulators.marketo.faults import MarketoFault
from simulators.marketo.fields import STANDARD_FIELDS, FieldCatalog, coerce, mapped_fields
from simulators.marketo.webhooks import encode_value, extract

FIELDS = {f.name: f for f in STANDARD_FIELDS}
CENTRAL = ZoneInfo("America/Chicago")


@given(st.text())
def test_json_token_encoding_yields_the_quoted_string(text: str) -> None:
    rendered = encode_value(FIELDS["company"], text, None, "json")
    assert json.loads(rendered) == text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1))
def test_form_url_token_encoding_round_trips(text: str) -> None:
    rendered = encode_value(FIELDS["company"], text, None, "form-url")
    assert parse_qs(f"v={rendered}", keep_blank_values=True)["v"] == [text]


@given(st.integers(), st.booleans())
def test_json_encoding_of_numbers_and_booleans_is_bare(number: int, flag: bool) -> None:
    assert json.loads(encode_value(FIELDS["id"], number, None, "json")) == number
    assert json.loads(encode_value(FIELDS["unsubscribed"], flag, None, "json")) is flag
    assert encode_value(FIELDS["unsubscribed"], None, None, "json") == "null"


@given(st.booleans())
def test_boolean_fields_accept_booleans_and_their_spellings(flag: bool) -> None:
    field = FIELDS["unsubscribed"]
    assert coerce(field, flag) is flag
    assert coerce(field, str(flag).lower()) is flag
    assert coerce(field, int(flag)) is flag


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_integer_fields_accept_integers_and_digit_strings(number: int) -> None:
    assert coerce(FIELDS["id"], number) == number
    assert coerce(FIELDS["id"], str(number)) == number


@given(
    st.integers(min_value=2**31, max_value=2**70) | st.integers(max_value=-(2**31) - 1, min_value=-(2**70))
)
def test_integers_beyond_32_bits_are_1001(number: int) -> None:
    with pytest.raises(MarketoFault) as caught:
        coerce(FIELDS["id"], str(number))
    assert caught.value.code == "1001"


@given(
    st.text(alphabet="abcdefghij xyz", min_size=1).filter(lambda t: t.strip().lower() not in {"yes", "no"})
)
def test_wrong_types_are_1001(text: str) -> None:
    with pytest.raises(MarketoFault) as caught:
        coerce(FIELDS["unsubscribed"], text)
    assert caught.value.code == "1001"
    with pytest.raises(MarketoFault):
        coerce(FIELDS["id"], text)


@given(st.integers(min_value=0, max_value=10**9), st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_paging_cursor_round_trips(position: int, since: float) -> None:
    cursor = Cursor(position, round(since, 3))
    token = cursor.encode()
    assert token.isascii()
    assert token.upper() == token
    assert Cursor.decode(token) == cursor


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_quota_resets_at_the_next_midnight_in_us_central(now: datetime) -> None:
    wait = seconds_until_quota_reset(now)
    assert 0 < wait <= 25 * 3600
    reset = (now + timedelta(seconds=wait)).astimezone(CENTRAL)
    assert (reset.hour, reset.minute, reset.second) == (0, 0, 0)
    assert reset.date() > now.astimezone(CENTRAL).date()


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["email", "title", "company"]), st.text(max_size=5000), min_size=1),
        max_size=700,
    )
)
@settings(max_examples=30, deadline=None)
def test_write_chunks_keep_order_count_and_size(records: list[dict[str, str]]) -> None:
    chunks = list(_write_chunks(records))
    assert [r for c in chunks for r in c] == records
    for chunk in chunks:
        assert 1 <= len(chunk) <= BATCH
        assert len(chunk) == 1 or len(json.dumps(chunk).encode()) <= MAX_BODY_BYTES + len(chunk)


@given(st.lists(st.floats(min_value=0, max_value=15), min_size=1, max_size=120), st.integers(1, 12))
@settings(max_examples=60, deadline=None)
def test_limiter_never_lets_more_than_max_calls_into_a_window(gaps: list[float], max_calls: int) -> None:
    now = [1_000.0]
    stamps: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = CallLimiter(max_calls, 4, clock=lambda: now[0], sleep=sleep)
    for gap in gaps:
        now[0] += gap
        with limiter.slot():
            stamps.append(now[0])
    for i, start in enumerate(stamps):
        in_window = [s for s in stamps[i:] if s < start + 20.0]
        assert len(in_window) <= max_calls


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("606", RateLimitedError),
        ("615", RateLimitedError),
        ("604", ServiceUnavailableError),
        ("608", ServiceUnavailableError),
        ("611", ServiceUnavailableError),
        ("713", ServiceUnavailableError),
        ("607", QuotaExhaustedError),
        ("602", AuthExpiredError),
        ("603", AccessDeniedError),
        ("1008", AccessDeniedError),
        ("1004", NotFoundError),
        ("702", NotFoundError),
        ("1005", ConflictError),
        ("1001", ValidationError),
        ("1003", ValidationError),
        ("1006", ValidationError),
        ("701", ValidationError),
        ("609", PermanentError),
        ("612", PermanentError),
    ],
)
def test_codes_map_to_the_error_tree(code: str, kind: type[Exception]) -> None:
    error = error_for(code, "message")
    assert type(error) is kind
    assert (error.code, error.service) == (code, "marketo")


@pytest.mark.parametrize(
    ("code", "message", "kind", "retry_after"),
    [
        ("1016", "Too many imports", BulkQueueFullError, 30.0),
        ("1029", "Too many jobs in queue", BulkQueueFullError, 60.0),
        ("1029", "Export daily quota exceeded", QuotaExhaustedError, None),
        ("1029", "Job already queued", ConflictError, None),
        ("1035", "Unsupported filter type for target subscription", UnsupportedError, None),
        ("703", "The feature is not enabled for the subscription", UnsupportedError, None),
    ],
)
def test_bulk_codes_map_by_code_and_message(
    code: str, message: str, kind: type[Exception], retry_after: float | None
) -> None:
    error = error_for(code, message)
    assert type(error) is kind
    assert error.code == code
    if retry_after is not None:
        assert isinstance(error, RateLimitedError)
        assert error.retry_after == retry_after
    if kind is QuotaExhaustedError:
        assert isinstance(error, QuotaExhaustedError)
        assert error.retry_after is not None
        assert 0 < error.retry_after <= 25 * 3600


def test_activity_dates_in_both_documented_forms() -> None:
    base = {"marketoGUID": "1", "leadId": 1, "activityTypeId": 13}
    z = Activity.from_json({**base, "activityDate": "2026-11-20T09:14:02Z"})
    plus = Activity.from_json({**base, "activityDate": "2026-11-20T09:14:02+0000"})
    assert z.activity_date == plus.activity_date == datetime(2026, 11, 20, 9, 14, 2, tzinfo=UTC)
    assert z.id is None


def test_response_paths() -> None:
    document = {"orders": [{"orderDate": "2026-01-02"}], "a b": {"c-d": 1}}
    assert extract(document, "orders[0].orderDate") == (True, "2026-01-02")
    assert extract(document, "a b.c-d") == (True, 1)
    assert extract(document, "orders[1].orderDate") == (False, None)


def _limiter(max_calls: int) -> tuple[CallLimiter, list[float]]:
    now = [1_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return CallLimiter(max_calls, 4, clock=lambda: now[0], sleep=sleep), now


def test_a_606_halves_the_rate_once_per_burst_and_it_grows_back() -> None:
    limiter, now = _limiter(80)
    assert limiter.saw_rate_limit() == 40
    now[0] += 4.0
    assert limiter.saw_rate_limit() is None  # another answer of the same burst
    assert limiter.allowed() == 40
    now[0] += 20.0
    assert limiter.allowed() == 48  # a tenth of the share per quiet window
    assert limiter.saw_rate_limit() == 24  # halved from where it had got to
    now[0] += 20.0 * 20
    assert limiter.allowed() == 80  # never above the configured share


@given(
    st.lists(
        st.tuples(st.sampled_from(["call", "606", "wait"]), st.floats(min_value=0, max_value=30)),
        max_size=80,
    ),
    st.integers(1, 100),
)
@settings(max_examples=60, deadline=None)
def test_the_rate_stays_between_one_call_and_the_share(
    events: list[tuple[str, float]], max_calls: int
) -> None:
    limiter, now = _limiter(max_calls)
    stamps: list[float] = []
    for event, seconds in events:
        if event == "606":
            limiter.saw_rate_limit()
        elif event == "wait":
            now[0] += seconds
        else:
            with limiter.slot():
                stamps.append(now[0])
        assert 1 <= limiter.allowed() <= max_calls
    for i, start in enumerate(stamps):
        assert len([s for s in stamps[i:] if s < start + 20.0]) <= max_calls


def test_a_caller_with_a_deadline_waits_that_long_then_is_told_when_to_come_back() -> None:
    limiter, now = _limiter(2)
    for _ in range(2):
        with limiter.slot(max_wait=5.0):
            now[0] += 1.0
    with pytest.raises(RateShareSpentError) as spent, limiter.slot(max_wait=5.0):
        pass
    assert now[0] == pytest.approx(1_007.0)  # it waited its 5 s
    assert spent.value.retry_after == pytest.approx(13.0)  # the first call's stamp leaves at 20 s
    with limiter.slot(max_wait=13.5):  # long enough: it gets the slot
        pass
    assert now[0] == pytest.approx(1_020.0)


def test_every_field_of_the_default_mapping_is_in_the_catalog() -> None:
    catalog = FieldCatalog()
    assert [name for name in load_mapping().marketo_fields() if catalog.get(name) is None] == []


def test_a_field_added_to_a_mapping_becomes_a_custom_field_of_its_type() -> None:
    text = (resources.files("shared").joinpath("default_mapping.yaml").read_text(encoding="utf-8")).replace(
        "    - {marketo: msftDoNotEmail, dynamics: donotemail,       type: boolean}\ncontact:",
        "    - {marketo: msftDoNotEmail, dynamics: donotemail,       type: boolean}\n"
        "    - {marketo: leadScoreValue, dynamics: new_leadscore, type: integer}\ncontact:",
    )
    added = {f.name: f for f in mapped_fields(parse_mapping(text, origin="test"))}["leadScoreValue"]
    assert (added.data_type, added.display_name, added.soap_name, added.custom) == (
        "integer",
        "Lead Score Value",
        "LeadScoreValue",
        True,
    )
