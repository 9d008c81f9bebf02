"""The simulators' admin endpoints read their bodies strictly (simulators/admin_body.py): helpers
for the property tests of both simulators (tests/dataverse, tests/marketo).

A case names an endpoint, a body it accepts, one field of it and the JSON type that field must
be. Any value of another type put in that field is refused with a 400 whose message names the
field and what it must be, and the state the case reads (a GET of the admin API) is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from hypothesis import strategies as st

from simulators.admin_body import is_number, is_whole

CHECKS: dict[str, Callable[[Any], bool]] = {
    "flag": lambda v: isinstance(v, bool),
    "whole": is_whole,
    "number": is_number,
    "text": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    # What truthiness and int() would have taken: a boolean or a number spelt as a string.
    st.sampled_from(["false", "true", "0", "3", "1.5", ""]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: dict[str, Any]
    field: str
    kind: str
    nullable: bool = False
    # GET paths of the admin API whose answers the refused request must leave as they were.
    state: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.field}"


def wrong(case: Case) -> st.SearchStrategy[Any]:
    """A JSON value ``case.field`` must not take."""
    ok = CHECKS[case.kind]

    def refused(value: Any) -> bool:
        return not ok(value) and not (value is None and case.nullable)

    return _json.filter(refused)


def send(session: requests.Session, admin_url: str, case: Case, body: dict[str, Any]) -> requests.Response:
    return session.request(case.method, f"{admin_url}{case.path}", data=json.dumps(body), timeout=30)


def snapshot(session: requests.Session, admin_url: str, case: Case) -> list[Any]:
    return [session.get(f"{admin_url}{path}", timeout=30).json() for path in case.state]


def assert_refused(session: requests.Session, admin_url: str, case: Case, value: Any) -> None:
    before = snapshot(session, admin_url, case)
    answer = send(session, admin_url, case, {**case.body, case.field: value})
    assert answer.status_code == 400, (str(case), value, answer.text)
    assert answer.json()["error"].startswith(f"{case.field}: must be "), answer.text
    assert snapshot(session, admin_url, case) == before
