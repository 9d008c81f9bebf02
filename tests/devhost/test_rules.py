"""Pure rules of the local host: route templates, keys, schedules, host.json, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdsync.devhost.hostconfig import HostConfig
from mdsync.devhost.keys import AuthLevel, KeyRing, presented_key
from mdsync.devhost.routes import RouteTemplate
from mdsync.devhost.settings import resolve
from mdsync.devhost.timers import NcrontabSchedule
from shared.errors import ConfigurationError

segment_text = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20)


@given(first=segment_text, second=segment_text)
def test_route_values_round_trip_through_percent_encoding(first: str, second: str) -> None:
    template = RouteTemplate("people/{first}/{second?}")
    assert template.match(f"/people/{quote(first, safe='')}/{quote(second, safe='')}") == {
        "first": first,
        "second": second,
    }
    assert template.match(f"/people/{quote(first, safe='')}") == {"first": first}


@given(st.integers())
def test_int_constraint_accepts_exactly_the_32_bit_integers(number: int) -> None:
    matched = RouteTemplate("items/{id:int}").match(f"/items/{number}")
    assert (matched == {"id": str(number)}) == (-(2**31) <= number < 2**31)


@given(st.text(alphabet="abcxyz.-_", min_size=1, max_size=10))
def test_int_constraint_rejects_words(word: str) -> None:
    assert RouteTemplate("items/{id:int}").match(f"/items/{word}") is None


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("files/{*rest}", "/files/a/b/c", {"rest": "a/b/c"}),
        ("files/{*rest}", "/files", {}),
        ("f/{name}.{ext}", "/f/archive.tar.gz", {"name": "archive.tar", "ext": "gz"}),
        ("p/{page:int:min(1)=1}", "/p", {"page": "1"}),
        ("p/{page:int:min(1)=1}", "/p/0", None),
        ("x/{code:regex(^[a-z]{{3}}$)}", "/x/abc", {"code": "abc"}),
        ("x/{code:regex(^[a-z]{{3}}$)}", "/x/abcd", None),
        (
            "g/{id:guid}",
            "/g/6f9619ff-8b86-d011-b42d-00c04fc964ff",
            {"id": "6f9619ff-8b86-d011-b42d-00c04fc964ff"},
        ),
        ("g/{id:guid}", "/g/nope", None),
        ("b/{flag:bool}", "/b/True", {"flag": "True"}),
        ("a/{name:alpha:length(2,4)}", "/a/abc", {"name": "abc"}),
        ("a/{name:alpha:length(2,4)}", "/a/abcde", None),
        ("Mixed/Case", "/mixed/CASE/", {}),
        ("s/{v}", "/s/a%2Fb", {"v": "a/b"}),
    ],
)
def test_route_templates(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate(template).match(path) == expected


@pytest.mark.parametrize(
    "template", ["a/{id:nosuch}", "a/{id", "a/}", "a/{x}/{x}", "{*rest}/a", "a/{bad-name}"]
)
def test_invalid_templates_fail_at_start(template: str) -> None:
    with pytest.raises(ConfigurationError):
        RouteTemplate(template)


def test_literal_routes_take_precedence_over_parameters() -> None:
    ranked = sorted(
        ["a/{x}", "a/b", "a/{x:int}", "a/{*rest}", "a/{x?}"], key=lambda t: RouteTemplate(t).precedence
    )
    assert ranked == ["a/b", "a/{x:int}", "a/{x}", "a/{x?}", "a/{*rest}"]


KEYS = KeyRing(function_keys={"Hook": ["f1", "f2"]}, host_keys=["h1"], master_key="m1")


@pytest.mark.parametrize(
    ("level", "function", "key", "allowed"),
    [
        (AuthLevel.ANONYMOUS, "hook", None, True),
        (AuthLevel.FUNCTION, "hook", None, False),
        (AuthLevel.FUNCTION, "hook", "", False),
        (AuthLevel.FUNCTION, "hook", "f2", True),
        (AuthLevel.FUNCTION, "HOOK", "f1", True),
        (AuthLevel.FUNCTION, "other", "f1", False),
        (AuthLevel.FUNCTION, "other", "h1", True),
        (AuthLevel.FUNCTION, "other", "m1", True),
        (AuthLevel.FUNCTION, "hook", "f1x", False),
        (AuthLevel.ADMIN, "hook", "f1", False),
        (AuthLevel.ADMIN, "hook", "h1", False),
        (AuthLevel.ADMIN, "hook", "m1", True),
    ],
)
def test_key_levels(level: AuthLevel, function: str, key: str | None, allowed: bool) -> None:
    assert KEYS.allows(level, function, key) is allowed


def test_header_key_wins_over_query_key() -> None:
    assert presented_key({"x-functions-key": "a"}, {"code": "b"}) == "a"
    assert presented_key({}, {"code": "b"}) == "b"
    assert presented_key({}, {}) is None


@pytest.mark.parametrize("text", ["FUNCTION", "function", "Anonymous", "ADMIN"])
def test_auth_level_parses_function_json_spelling(text: str) -> None:
    assert AuthLevel.parse(text).value == text.lower()


def test_six_field_schedules_count_seconds_first() -> None:
    start = datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert NcrontabSchedule("*/5 * * * * *").next_after(start) == start.replace(second=5, microsecond=0)
    assert NcrontabSchedule("0 30 9 * * 1-5").next_after(start) == datetime(2024, 1, 1, 9, 30, tzinfo=UTC)
    assert NcrontabSchedule("*/5 * * * *").next_after(start) == datetime(2024, 1, 1, 0, 5, tzinfo=UTC)
    assert NcrontabSchedule("0 */5 * * * *").interval() == timedelta(minutes=5)


@pytest.mark.parametrize("expression", ["00:05:00", "* * *", "61 * * * * *", "0 0 0 1 1 * *"])
def test_invalid_schedules_fail_at_start(expression: str) -> None:
    with pytest.raises(ConfigurationError):
        NcrontabSchedule(expression)


def test_host_json_settings_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(
        json.dumps(
            {"extensions": {"http": {"routePrefix": "/v1/"}, "serviceBus": {"maxMessageBatchSize": 50}}}
        )
    )
    config = HostConfig.load(path)
    assert (config.route_prefix, config.max_message_batch_size) == ("v1", 50)
    assert HostConfig.load(tmp_path / "absent.json").route_prefix == "api"
    path.write_text(json.dumps({"extensions": {"serviceBus": {"maxMessageBatchSize": 0}}}))
    with pytest.raises(ConfigurationError, match="maxMessageBatchSize"):
        HostConfig.load(path)


def test_the_project_host_json_is_readable() -> None:
    config = HostConfig.load(Path(__file__).resolve().parents[2] / "host.json")
    assert config.route_prefix == "api"


def test_binding_expressions_resolve_from_settings() -> None:
    assert resolve("%A%-x-%B%", {"A": "1", "B": "2"}) == "1-x-2"
    assert resolve("plain", {}) == "plain"
    with pytest.raises(ConfigurationError, match="%MISSING%"):
        resolve("%MISSING%", {})
