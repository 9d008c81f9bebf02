"""Property tests: whatever the value, a built filter or key parses back to exactly that value
(checked with the simulator's OData parser, which follows the Web API grammar)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.dataverse import odata
from simulators.dataverse.faults import DataverseFault
from simulators.dataverse.odata import (
    Compare,
    InList,
    Literal,
    Match,
    Prop,
    evaluate,
    parse_filter,
    parse_key,
)

ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60)


def string_columns(path: tuple[str, ...]) -> str:
    return "string"


@given(ANY_TEXT)
def test_eq_round_trips_any_string(value: str) -> None:
    node = parse_filter(odata.eq("emailaddress1", value), string_columns)
    assert node == Compare("eq", Prop(("emailaddress1",), "string"), Literal("string", value))


@given(st.lists(ANY_TEXT, min_size=1, max_size=5))
def test_in_round_trips_any_strings(values: list[str]) -> None:
    node = parse_filter(odata.in_("lastname", values), string_columns)
    assert node == InList(Prop(("lastname",), "string"), tuple(values), negate=False)


@given(ANY_TEXT)
def test_contains_matches_the_value_literally(value: str) -> None:
    node = parse_filter(odata.contains("jobtitle", value), string_columns)
    assert isinstance(node, Match)
    assert evaluate(node, {"jobtitle": f"x{value}y"}, lambda row, path: row[path[0]])
    if value:
        assert not evaluate(node, {"jobtitle": value[:-1]}, lambda row, path: row[path[0]])


@given(st.dictionaries(st.sampled_from(["mdsync_marketoid", "emailaddress1"]), ANY_TEXT, min_size=1))
def test_key_segment_round_trips(key: dict[str, str]) -> None:
    assert parse_key(odata.key_segment(key)).named == key


@given(st.uuids())
def test_guids_are_bare_and_lower_case(value: uuid.UUID) -> None:
    node = parse_filter(odata.eq("_ownerid_value", value), lambda path: "guid")
    assert node == Compare("eq", Prop(("_ownerid_value",), "guid"), Literal("guid", str(value)))
    assert parse_key(odata.key_segment(str(value).upper())).primary == str(value)


def test_other_literals() -> None:
    when = datetime(2024, 11, 1, 8, 30, tzinfo=UTC)
    assert odata.eq("modifiedon", when) == "modifiedon eq 2024-11-01T08:30:00Z"
    assert odata.eq("donotemail", False) == "donotemail eq false"
    assert odata.eq("mdsync_marketoid", None) == "mdsync_marketoid eq null"
    assert (
        odata.in_("statuscode", [1, 2])
        == "Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['1','2'])"
    )
    assert odata.and_(odata.eq("a", 1), odata.ne("b", "x")) == "(a eq 1) and (b ne 'x')"


@pytest.mark.parametrize("bad", ["emailaddress1 eq 'x' or 1 eq 1", "a b", "", "x)", "../leads"])
def test_property_names_cannot_smuggle_syntax(bad: str) -> None:
    with pytest.raises(ValueError, match="not a property name"):
        odata.eq(bad, "v")


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="GUID"):
        odata.guid("7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c' or 1 eq 1")
    with pytest.raises(ValueError, match="timezone"):
        odata.literal(datetime(2024, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="finite"):
        odata.literal(float("nan"))
    with pytest.raises(ValueError, match="at least one"):
        odata.in_("x", [])


def test_key_path_encodes_what_a_path_cannot_carry() -> None:
    assert odata.key_path("leads", {"emailaddress1": "a+b/c#d?e&f%g h"}) == (
        "leads(emailaddress1='a%2Bb%2Fc%23d%3Fe%26f%25g%20h')"
    )


def test_an_unescaped_quote_is_what_the_service_rejects() -> None:
    with pytest.raises(DataverseFault) as caught:
        parse_filter("lastname eq 'O'Bryan'", string_columns)
    assert (
        caught.value.message
        == "There is an unterminated string literal at position 20 in 'lastname eq 'O'Bryan''."
    )
