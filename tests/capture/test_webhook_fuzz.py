"""Fuzzed webhook bodies: never a 5xx, and nothing queued unless the answer is 202.

The cases are mutations of RemoteExecutionContexts the Dataverse simulator really sent (a lead's
Create and Update, the contact created by a qualification, a contact's Delete), so most of them
get deep into the parser, plus raw garbage. Each case is one of two kinds:

- broken: a required property missing or of the wrong type, an unreadable value in a mapped
  column, a bad or out-of-range date, a key or body too long, invalid JSON, JSON that is not an
  object, nesting too deep, a wrong content type, a wrong or missing secret, or a table/message
  mdsync does not sync. The answer must be the 4xx that names the fault (400, 401, 413, 415),
  or the documented 200 ``ignored``; the queue must stay empty.
- harmless: what the reference says a receiver must tolerate (unknown properties anywhere,
  unknown columns, other values in columns mdsync does not read, null lists, a huge value in a
  mapped text column). The answer must be 202 and exactly one notice queued (or none, when the
  queue already holds that very change: its dedup id was answered before).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from functions.dynamics_webhook import dynamics_webhook
from simulators.stack import WEBHOOK_SECRET, SimulatorStack

from .conftest import HUMAN, App, Tap, isolated_app, response_json, webhook_request

KNOWN = {
    "MessageName",
    "PrimaryEntityName",
    "PrimaryEntityId",
    "Stage",
    "Depth",
    "InitiatingUserId",
    "UserId",
    "OperationCreatedOn",
    "CorrelationId",
    "InputParameters",
    "PreEntityImages",
    "PostEntityImages",
}
REQUIRED = ("MessageName", "PrimaryEntityName", "PrimaryEntityId")
EXTRA_COLUMNS = {"emailaddress1", "originatingleadid", "versionnumber"}
ASYNC_NAME = "AsynchronousStepPrimaryName"


class Base:
    """One real delivery: its headers, parsed body, and the columns the parser reads."""

    def __init__(self, name: str, headers: dict[str, str], context: dict[str, Any], wanted: frozenset[str]):
        self.name = name
        self.headers = headers
        self.context = context
        self.wanted = wanted

    def __repr__(self) -> str:
        return f"Base({self.name!r})"


class Fuzz:
    """What the fuzz tests share. Not a dataclass: Hypothesis prints a failing test's arguments,
    and would print a dataclass field by field (the bases are kilobytes of JSON)."""

    def __init__(self, app: App, bases: list[Base]) -> None:
        self.app = app
        self.bases = bases
        self.seen: set[str] = set()

    def __repr__(self) -> str:
        return f"Fuzz(bases={[b.name for b in self.bases]})"


class Case:
    """One request to send, and the status it must get: 202 for a harmless case; for a broken
    one the 4xx that names the fault, or 200 (ignored)."""

    def __init__(self, label: str, body: bytes, headers: dict[str, str], expected: int) -> None:
        self.label = label
        self.body = body
        self.headers = headers
        self.expected = expected

    def __repr__(self) -> str:
        # Short: Hypothesis prints drawn values, and a body may be a megabyte.
        return f"Case({self.label!r}, expected={self.expected}, {len(self.body)} bytes: {self.body[:400]!r})"


# --- capturing the bases ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz(capture_stack: SimulatorStack, tap: Tap, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    workdir = Path(tmp_path_factory.mktemp("fuzz"))
    with isolated_app(capture_stack, tap, workdir) as app:
        app.register_tap()
        admin = app.dataverse_admin
        lead = {"firstname": "Ana", "lastname": "Lopez", "emailaddress1": "ana@fabrikam.example"}
        lead_id = admin.create_as(HUMAN, "leads", {**lead, "subject": "Web", "leadsourcecode": 8})
        admin.update_as(HUMAN, "leads", lead_id, {"jobtitle": "CTO", "leadsourcecode": 7})
        [contact] = admin.qualify_as(HUMAN, lead_id)
        admin.delete_as(HUMAN, "contacts", contact["contactid"])
        bases = []
        for delivery in app.deliveries(5):
            context = delivery.context
            entity = context["PrimaryEntityName"]
            columns = frozenset(app.deps.mapping.dynamics_columns(entity)) | EXTRA_COLUMNS
            bases.append(Base(f"{entity} {context['MessageName']}", delivery.headers, context, columns))
        app.queued()
        yield Fuzz(app, bases)


# --- building blocks ---------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
containers = st.lists(json_values, max_size=3) | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
numbers = st.integers(min_value=-(2**40), max_value=2**40) | st.floats(allow_nan=False, allow_infinity=False)
not_a_string = st.booleans() | numbers | containers
not_a_uuid = not_a_string | st.text(max_size=40).map(lambda t: t + "!")
not_an_object = st.booleans() | numbers | st.text(max_size=20) | st.lists(scalars, max_size=3)
not_a_list = st.booleans() | numbers | st.text(max_size=20) | st.dictionaries(st.text(max_size=8), scalars)
bad_depth = (
    containers
    | st.text(max_size=10).map(lambda t: "x" + t)
    | st.integers(min_value=1001, max_value=2**60)
    | st.integers(max_value=-1)
    | st.floats(min_value=0.01, max_value=0.99).map(lambda f: 3 + f)
)
bad_dates = (
    st.text(max_size=30).map(lambda t: "x" + t)
    | st.integers(min_value=253_402_300_800_000, max_value=10**15 - 1).map(lambda n: f"/Date({n})/")
    | st.integers(min_value=62_135_596_800_001, max_value=10**15 - 1).map(lambda n: f"/Date(-{n})/")
    | not_a_string
)
unreadable: st.SearchStrategy[Any] = (
    st.lists(scalars, max_size=3)
    | st.just({})
    | st.dictionaries(st.sampled_from(["Value", "Id", "Name"]), scalars, max_size=2)
    | st.builds(
        lambda v: {"__type": "OptionSetValue:x", "Value": v}, st.text(max_size=5) | st.none() | st.booleans()
    )
    | st.builds(lambda v: {"__type": "Money:x", "Value": v}, st.text(max_size=5) | st.none() | containers)
    | st.builds(
        lambda v: {"__type": "EntityReference:x", "Id": v}, st.text(max_size=20).map(lambda t: t + "!")
    )
    | st.builds(lambda v: {"__type": "Guid:#System", "__value": v}, numbers | containers)
    | st.integers(min_value=253_402_300_800_000, max_value=10**15 - 1).map(lambda n: f"/Date({n})/")
)
unknown_names = st.text(min_size=1, max_size=20).filter(lambda k: k not in KNOWN | {"key", "value"})
secrets = st.none() | st.text(max_size=50).filter(lambda s: s != WEBHOOK_SECRET)
content_types = (
    st.none()
    | st.sampled_from(
        ["text/plain", "application/xml", "application/x-www-form-urlencoded", "text/json", "", "json"]
    )
    | st.text(max_size=30).filter(
        lambda t: (
            t.split(";", 1)[0].strip().lower() != "application/json"
            and not t.split(";", 1)[0].strip().lower().endswith("+json")
        )
    )
)


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def _new_side(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The entities the parser reads new values from: Target and the first real post-image."""
    found = []
    target = next((kv for kv in context.get("InputParameters") or [] if kv.get("key") == "Target"), None)
    if target and isinstance(target["value"], dict) and "Attributes" in target["value"]:
        found.append(target["value"])
    post = [kv for kv in context.get("PostEntityImages") or [] if kv["key"] != ASYNC_NAME]
    if post:
        found.append(post[0]["value"])
    return found


def _parsed_entities(context: dict[str, Any]) -> list[dict[str, Any]]:
    """Every entity the parser reads: the new side and the first pre-image."""
    pre = [kv["value"] for kv in (context.get("PreEntityImages") or [])[:1]]
    return _new_side(context) + pre


# --- broken cases ------------------------------------------------------------------------------------


Mutation = Callable[[st.DrawFn, Base, dict[str, Any]], str]


def drop_required(draw: st.DrawFn, base: Base, doc: dict[str, Any]) -> str:
    name = draw(st.sampled_from(REQUIRED))
    del doc[name]
    return f"missing {name}"


def wrong_required(draw: st.DrawFn, base: Base, doc: dict[str, Any]) -> str:
    name = draw(st.sampled_from(REQUIRED))
    doc[name] = draw(not_a_uuid if name == "PrimaryEntityId" else not_a_string | st.none())
    return f"wrong type {name}"


def wrong_typed(draw: st.DrawFn, base: Base, doc: dict[str, Any]) -> str:
    name = draw(
        st.sampled_from(
            [
                "Depth",
                "OperationCreatedOn",
                "InitiatingUserId",
                "UserId",
                "CorrelationId",
                "Stage",
                "InputParameters",
                "PreEntityImages",
                "PostEntityImages",
                "list item",
            ]
        )
    )
    if name == "Depth":
        doc[name] = draw(bad_depth)
    elif name == "OperationCreatedOn":
        doc[name] = draw(bad_dates)
    elif name in ("InitiatingUserId", "UserId", "CorrelationId"):
        doc[name] = draw(not_a_uuid)
    elif name == "Stage":
        doc[name] = draw(containers | st.text(max_size=10).map(lambda t: "x" + t))
    elif name == "list item":
        which = draw(st.sampled_from(["InputParameters", "PreEntityImages", "PostEntityImages"]))
        doc[which] = [*(doc.get(which) or []), draw(not_an_object)]
        return f"non-object item in {which}"
    else:
        doc[name] = draw(not_a_list)
    return f"wrong type {name}"


def bad_entity(draw: st.DrawFn, base: Base, doc: dict[str, Any]) -> str:
    entity = draw(st.sampled_from(_parsed_entities(doc)))
    part = draw(st.sampled_from(["Attributes", "item", "key", "long key", "Id", "RowVersion", "LogicalName"]))
    if part == "Attributes":
        entity["Attributes"] = draw(not_a_list)
    elif part == "item":
        entity["Attributes"].append(draw(not_an_object))
    elif part == "key":
        entity["Attributes"].append({"key": draw(not_a_string | st.none()), "value": "x"})
    elif part == "long key":
        entity["Attributes"].append({"key": "k" * draw(st.integers(257, 5000)), "value": "x"})
    elif part == "Id":
        entity["Id"] = draw(not_a_uuid)
    else:
        limit = 64 if part == "RowVersion" else 128
        entity[part] = draw(not_a_string | st.integers(limit + 1, limit + 100).map(lambda n: "v" * n))
    return f"entity {part}"


def bad_column(draw: st.DrawFn, base: Base, doc: dict[str, Any]) -> str:
    entity = draw(st.sampled_from(_parsed_entities(doc)))
    name = draw(st.sampled_from(sorted(base.wanted)))
    value = draw(unreadable)
    winner = _new_side(doc)[:1]
    if name == "originatingleadid" and winner and entity is winner[0]:
        # A lead reference that is not one: refused where it counts, in the winning new value
        # (the Target's, else the post-image's).
        value = draw(unreadable | st.text(max_size=20).map(lambda t: t + "!") | numbers | st.booleans())
    entity["Attributes"] = [a for a in entity["Attributes"] if a.get("key") != name]
    entity["Attributes"].append({"key": name, "value": value})
    return f"unreadable {name}"


def not_synced(draw: st.DrawFn, base: Base, doc: dict[str, Any]) -> str:
    if draw(st.booleans()):
        doc["PrimaryEntityName"] = draw(st.text(max_size=30).filter(lambda t: t not in ("lead", "contact")))
        return "table not synced"
    doc["MessageName"] = draw(
        st.sampled_from(["Assign", "SetState", "QualifyLead", "create", ""])
        | st.text(max_size=20).filter(lambda t: t not in ("Create", "Update", "Delete", "Merge"))
    )
    return "message not synced"


BODY_MUTATIONS: list[Mutation] = [
    drop_required,
    wrong_required,
    wrong_typed,
    bad_entity,
    bad_column,
    not_synced,
]


def _corrupt_json(draw: st.DrawFn, raw: bytes) -> tuple[str, bytes]:
    how = draw(
        st.sampled_from(
            ["truncated", "bad utf-8", "NaN", "Infinity", "big integer", "nested", "not an object"]
        )
    )
    if how == "truncated":
        return how, raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "bad utf-8":
        at = draw(st.integers(0, len(raw)))
        return how, raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])) + raw[
            at:
        ]
    if how in ("NaN", "Infinity"):
        return how, raw[:-1] + f', "Zz": {draw(st.sampled_from(["", "-"]))}{how}}}'.encode()
    if how == "big integer":
        return how, raw[:-1] + b', "Zz": ' + b"9" * draw(st.integers(4301, 6000)) + b"}"
    if how == "nested":
        depth = draw(st.integers(200_000, 250_000))  # beyond any recursion limit, under 1 MB
        return how, raw[:-1] + b', "Zz": ' + b"[" * depth + b"]" * depth + b"}"
    return how, _encode(draw(json_values.filter(lambda v: not isinstance(v, dict))))


def _bad_headers(draw: st.DrawFn, headers: dict[str, str]) -> str:
    if draw(st.booleans()):
        secret = draw(secrets)
        if secret:
            headers["x-mdsync-key"] = secret
        else:
            del headers["x-mdsync-key"]
        return "wrong secret"
    content_type = draw(content_types)
    if content_type is None:
        del headers["content-type"]
    else:
        headers["content-type"] = content_type
    return "wrong content type"


@st.composite
def broken_cases(draw: st.DrawFn, bases: list[Base]) -> Case:
    base = draw(st.sampled_from(bases))
    doc = copy.deepcopy(base.context)
    headers = dict(base.headers)
    kind = draw(st.sampled_from(["body", "body", "body", "body", "json", "headers", "size"]))
    if kind == "body":
        label = draw(st.sampled_from(BODY_MUTATIONS))(draw, base, doc)
        return Case(label, _encode(doc), headers, 200 if label.endswith("not synced") else 400)
    if kind == "json":
        how, raw = _corrupt_json(draw, _encode(doc))
        return Case(f"json {how}", raw, headers, 400)
    if kind == "headers":
        label = _bad_headers(draw, headers)
        return Case(label, _encode(doc), headers, 401 if label == "wrong secret" else 415)
    doc["Zz-padding"] = "p" * draw(st.integers(1024 * 1024, 1024 * 1024 + 5000))
    return Case("body over 1 MB", _encode(doc), headers, 413)


# --- harmless cases ----------------------------------------------------------------------------------


@st.composite
def harmless_cases(draw: st.DrawFn, bases: list[Base]) -> Case:
    base = draw(st.sampled_from(bases))
    doc = copy.deepcopy(base.context)
    how = draw(
        st.sampled_from(
            ["unknown property", "unknown column", "other column", "null lists", "parent", "huge text"]
        )
    )
    entities = _parsed_entities(doc)
    if how == "unknown property":
        doc.update(draw(st.dictionaries(unknown_names, json_values, min_size=1, max_size=4)))
    elif how == "unknown column" and entities:
        entity = draw(st.sampled_from(entities))
        names = st.text(min_size=1, max_size=20).filter(lambda k: k not in base.wanted)
        entity["Attributes"].append({"key": draw(names), "value": draw(json_values), draw(unknown_names): 1})
    elif how == "other column" and entities:
        entity = draw(st.sampled_from(entities))
        others = [a for a in entity["Attributes"] if a["key"] not in base.wanted]
        if others:
            draw(st.sampled_from(others))["value"] = draw(json_values)
    elif how == "null lists":
        doc[draw(st.sampled_from(["InputParameters", "PreEntityImages", "PostEntityImages"]))] = None
    elif how == "parent":
        doc["ParentContext"] = draw(json_values)
    elif how == "huge text" and entities:
        entity = draw(st.sampled_from(entities))
        entity["Attributes"].append({"key": "jobtitle", "value": "t" * draw(st.integers(2001, 400_000))})
    return Case(how, _encode(doc), dict(base.headers), 202)


# --- the properties ------------------------------------------------------------------------------------


def check(fuzz: Fuzz, case: Case) -> None:
    event(case.label)
    response = dynamics_webhook(webhook_request(case.body, case.headers))
    status = response.status_code
    queued = fuzz.app.queued()
    assert status < 500, response.get_body()
    assert status == case.expected, response.get_body()
    if status == 202:
        answered = response_json(response)["id"]
        assert [q.message_id for q in queued] == ([] if answered in fuzz.seen else [answered])
        fuzz.seen.add(answered)
        return
    if status == 200:
        assert response_json(response)["status"] == "ignored"
    assert queued == []


FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@FUZZ
@given(data=st.data())
def test_mutated_contexts_never_get_a_5xx_and_queue_only_on_202(fuzz: Fuzz, data: st.DataObject) -> None:
    harmless = data.draw(st.integers(0, 3)) == 0
    case = data.draw(harmless_cases(fuzz.bases) if harmless else broken_cases(fuzz.bases))
    check(fuzz, case)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=3000)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(unknown_names, json_values, max_size=6).map(lambda v: json.dumps(v).encode()),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "application/ld+json"]
    ),
)
def test_raw_garbage_gets_a_4xx_and_queues_nothing(fuzz: Fuzz, body: bytes, content_type: str) -> None:
    headers = {"x-mdsync-key": WEBHOOK_SECRET, "content-type": content_type}
    check(fuzz, Case("garbage", body, headers, 400))
