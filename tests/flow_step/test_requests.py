"""The request side: keys, encodings Marketo sends, and malformed bodies (4xx, nothing changed)."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions._marketo_body import MAX_BODY, MAX_ID, marketo_id_from
from mdsync.harness import HOST_KEY, LocalSystem
from shared.errors import BadRequestError
from simulators.stack import FLOW_STEP_SECRET

from .conftest import call, leads, new_person, post, snapshot

FORM = "application/x-www-form-urlencoded"


def _request(body: bytes, content_type: str | None) -> func.HttpRequest:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return func.HttpRequest(
        method="POST", url="https://localhost/api/marketo/sync-person", headers=headers, body=body
    )


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"x-functions-key": HOST_KEY}, id="no-flow-step-key"),
        pytest.param({"x-functions-key": HOST_KEY, "x-mdsync-key": FLOW_STEP_SECRET[:-1]}, id="wrong-key"),
        pytest.param({"x-functions-key": HOST_KEY, "x-mdsync-key": ""}, id="empty-key"),
        pytest.param({"x-mdsync-key": FLOW_STEP_SECRET}, id="no-function-key"),
        pytest.param({"x-functions-key": "nope", "x-mdsync-key": FLOW_STEP_SECRET}, id="wrong-function-key"),
    ],
)
def test_a_bad_key_answers_401_and_changes_nothing(system: LocalSystem, headers: dict[str, str]) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    before = snapshot(system)

    answer = post(system, {"marketoId": pid}, headers=headers)

    assert answer.status == 401
    assert snapshot(system) == before


def test_the_function_itself_checks_the_flow_step_key(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example")

    answer = call({"marketoId": pid}, headers={"x-mdsync-key": "x" * 40})

    assert answer.status == 401
    assert "x-mdsync-key" in answer.body["error"]
    assert leads(system) == []


# --- what Marketo sends ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param('{"marketoId": %d, "email": "ana@fabrikam.example"}', "application/json", id="json"),
        pytest.param('{"marketoId": "%d"}', "application/json; charset=utf-8", id="json-string-id"),
        pytest.param('{"leadId": %d}', "application/json", id="json-leadId"),
        pytest.param("marketoId=%d&email=ana%%40fabrikam.example", FORM, id="form"),
        pytest.param("id=%d", f"{FORM}; charset=UTF-8", id="form-id"),
        pytest.param('{"marketoId": %d}', FORM, id="json-template-with-the-default-type"),
        pytest.param('{"marketoId": %d}', None, id="no-content-type"),
    ],
)
def test_json_and_form_bodies_are_accepted(system: LocalSystem, body: str, content_type: str | None) -> None:
    pid = new_person(system, email="ana@fabrikam.example")

    answer = post(system, (body % pid).encode(), content_type=content_type)

    assert answer.status == 200
    assert answer.body["status"] == "created"
    assert leads(system)[0]["mdsync_marketoid"] == str(pid)


# --- malformed requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        pytest.param(b'{"marketoId": ', "application/json", 400, "not valid JSON", id="truncated-json"),
        pytest.param(b"[1001]", "application/json", 400, "JSON object", id="json-array"),
        pytest.param(b'{"email": "a@b.example"}', "application/json", 400, "missing", id="no-id"),
        pytest.param(b"{}", "application/json", 400, "missing", id="empty-object"),
        pytest.param(b"", "application/json", 400, "not valid JSON", id="empty-body"),
        pytest.param(b'{"marketoId": "abc"}', "application/json", 400, "whole number", id="letters"),
        pytest.param(b'{"marketoId": -5}', "application/json", 400, "between", id="negative"),
        pytest.param(b'{"marketoId": 0}', "application/json", 400, "between", id="zero"),
        pytest.param(b'{"marketoId": 1001.5}', "application/json", 400, "whole number", id="fraction"),
        pytest.param(b'{"marketoId": true}', "application/json", 400, "whole number", id="boolean"),
        pytest.param(b'{"marketoId": null}', "application/json", 400, "missing", id="null"),
        pytest.param(b'{"marketoId": NaN}', "application/json", 400, "whole number", id="nan"),
        pytest.param(b'{"marketoId": 1e400}', "application/json", 400, "whole number", id="infinite"),
        pytest.param(b'{"marketoId": 9007199254740993}', "application/json", 400, "between", id="too-big"),
        pytest.param(
            '{"marketoId": "\u00b2"}'.encode(), "application/json", 400, "whole number", id="unicode-digit"
        ),
        pytest.param(
            b'{"marketoId": "1001 OR 1=1"}', "application/json", 400, "whole number", id="injection"
        ),
        pytest.param(b"marketoId=", FORM, 400, "whole number", id="form-blank"),
        pytest.param(b"email=a%40b.example", FORM, 400, "missing", id="form-no-id"),
        pytest.param(b"marketoId=12x", FORM, 400, "whole number", id="form-letters"),
        pytest.param(b'{"marketoId": 1001}', "text/plain", 415, "Content-Type", id="text-plain"),
        pytest.param(b"<id>1001</id>", "application/xml", 415, "Content-Type", id="xml"),
        pytest.param(b"\xff\xfe{}", "application/json", 400, "UTF-8", id="not-utf8"),
        pytest.param(
            b'{"marketoId": 1001, "pad": "' + b"x" * MAX_BODY + b'"}',
            "application/json",
            413,
            "exceeds",
            id="oversized",
        ),
    ],
)
def test_a_malformed_request_answers_4xx_and_changes_nothing(
    system: LocalSystem, body: bytes, content_type: str, status: int, says: str
) -> None:
    new_person(system, email="ana@fabrikam.example")  # id 1001: a valid id would create a lead
    before = snapshot(system)

    answer = post(system, body, content_type=content_type)

    assert answer.status == status
    assert answer.body["status"] == "error"
    assert says in answer.body["error"]
    assert snapshot(system) == before


def test_a_wrong_method_is_refused_by_the_host(system: LocalSystem) -> None:
    from .conftest import KEY_HEADERS, flow_url

    response = system.session.get(flow_url(system), headers=KEY_HEADERS, timeout=30)

    assert 400 <= response.status_code < 500
    assert leads(system) == []


# --- the parser on its own: a fuzz -------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def _parsed(body: bytes, content_type: str | None) -> int | None:
    """The id, or None when refused with a 4xx; anything else propagates and fails the test."""
    try:
        value = marketo_id_from(_request(body, content_type))
    except BadRequestError as exc:
        refused = exc.status
    else:
        assert 0 < value <= MAX_ID
        return value
    assert 400 <= refused < 500
    return None


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from([None, "application/json", FORM, "text/plain", "application/ld+json"]),
)
def test_any_bytes_are_parsed_or_refused_with_a_4xx(body: bytes, content_type: str | None) -> None:
    _parsed(body, content_type)


@settings(max_examples=300, deadline=None)
@given(document=st.dictionaries(st.sampled_from(["marketoId", "leadId", "id", "email", "x"]), _JSON_VALUES))
def test_any_json_object_is_parsed_or_refused_with_a_4xx(document: dict[str, Any]) -> None:
    value = _parsed(json.dumps(document).encode(), "application/json")
    if value is not None:
        named = next(document[k] for k in ("marketoId", "leadId", "id") if k in document)
        assert str(value) in {str(named).strip(), str(named).strip().split(".")[0]}


@given(marketo_id=st.integers(min_value=1, max_value=MAX_ID))
def test_every_valid_id_reads_the_same_in_json_and_form(marketo_id: int) -> None:
    assert _parsed(json.dumps({"marketoId": marketo_id}).encode(), "application/json") == marketo_id
    assert _parsed(json.dumps({"marketoId": str(marketo_id)}).encode(), "application/json") == marketo_id
    assert _parsed(f"marketoId={marketo_id}&email=a%40b.example".encode(), FORM) == marketo_id
