"""Splitting a bulk call refused for its content, and the values Marketo's filter can carry:
rules that must hold for every input, so property tests."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from shared.errors import AccessDeniedError, ServiceUnavailableError, ValidationError
from shared.marketo.filters import unsendable
from shared.sync.split import MAX_SPLIT_CALLS, send_split

items = st.lists(st.integers(0, 10_000), min_size=1, max_size=300, unique=True)


class Service:
    """Refuses a whole call that carries a bad item, as a service refuses a value it cannot take."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.calls = 0

    def __call__(self, chunk: list[int]) -> list[str]:
        self.calls += 1
        refused = sorted(self.bad & set(chunk))
        if refused:
            raise ValidationError(f"Invalid value '{refused[0]}'", service="marketo", code="1001")
        return [f"ok {i}" for i in chunk]


@given(data=st.data(), values=items)
def test_every_good_item_goes_through_and_each_bad_one_stands_alone(
    data: st.DataObject, values: list[int]
) -> None:
    bad = set(data.draw(st.lists(st.sampled_from(values), max_size=5)))
    service = Service(bad)

    pieces = send_split(values, service, max_calls=10_000)

    assert [i for p in pieces for i in p.items] == values  # each item once, in order
    for piece in pieces:
        if piece.answer is not None:
            assert not bad & set(piece.items)
            assert piece.answer == [f"ok {i}" for i in piece.items]
        else:
            assert piece.refused_alone
            assert piece.items[0] in bad
    # About two calls per level for each bad item, never one per item.
    levels = math.ceil(math.log2(len(values))) + 1
    assert service.calls <= 1 + 2 * len(bad) * levels


@given(values=items)
def test_a_call_with_nothing_bad_is_one_call(values: list[int]) -> None:
    service = Service(set())
    (piece,) = send_split(values, service)
    assert piece.items == values
    assert service.calls == 1


@given(values=st.lists(st.integers(0, 10_000), min_size=2, max_size=300, unique=True))
def test_the_split_budget_bounds_the_calls_and_gives_up_the_rest_together(values: list[int]) -> None:
    service = Service(set(values))  # every item refused: a pathological batch
    pieces = send_split(values, service)
    assert service.calls <= MAX_SPLIT_CALLS + 1
    assert [i for p in pieces for i in p.items] == values
    assert all(p.error is not None for p in pieces)


def test_a_refusal_that_is_not_about_content_is_not_split() -> None:
    calls: list[list[int]] = []

    def denied(chunk: list[int]) -> None:
        calls.append(chunk)
        raise AccessDeniedError("Access denied", service="marketo", code="603")

    (piece,) = send_split([1, 2, 3], denied)
    assert len(calls) == 1
    assert isinstance(piece.error, AccessDeniedError)
    assert not piece.refused_alone

    def missing_field(chunk: list[int]) -> None:
        raise ValidationError("Field 'x' not found", service="marketo", code="1006")

    assert len(send_split([1, 2, 3], missing_field)) == 1


def test_a_transient_failure_is_not_split() -> None:
    def busy(chunk: list[int]) -> None:
        raise ServiceUnavailableError("busy", service="dataverse", status=503)

    (piece,) = send_split([1, 2, 3], busy)
    assert isinstance(piece.error, ServiceUnavailableError)


filter_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40
)


@given(values=st.lists(filter_values, min_size=1, max_size=20))
def test_sendable_filter_values_cannot_query_another_value(values: list[str]) -> None:
    """Marketo reads filterValues as one comma-separated text, trimming each value: whatever is
    sent must come back as exactly the values that were meant, so no value can ask for another
    person's record."""
    sendable = [v for v in values if unsendable("email", v) is None]
    as_marketo_reads_it = [v.strip() for v in ",".join(sendable).split(",") if v.strip()]
    assert as_marketo_reads_it == sendable


@given(value=filter_values)
def test_a_value_with_a_comma_space_or_foreign_letter_is_never_sent_as_an_email(value: str) -> None:
    if "," in value or any(ch.isspace() for ch in value) or not value.isascii():
        assert unsendable("email", value) is not None


def test_what_marketo_takes_as_ids_and_emails() -> None:
    assert unsendable("email", "ana.lopez+news@fabrikam.example") is None
    assert unsendable("email", "ana@fabrikam.example,bo@fabrikam.example") is not None
    assert unsendable("id", "2147483647") is None
    for bad_id in ("0", "2147483648", "-3", "12a", "\u0661\u0662"):
        assert unsendable("id", bad_id) is not None
