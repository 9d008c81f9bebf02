"""The Dataverse simulator's admin API reads its bodies strictly: the JSON string "false" is not
false, "3" is not 3, true is not 1; a wrong value is a 400 naming the field, and changes nothing."""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.dataverse.admin import DataverseAdmin
from tests.dataverse.conftest import HUMAN, Sims
from tests.strict_admin import Case, assert_refused, send, wrong

BYPASS = {"user": HUMAN, "granted": False, "limit": 3}
LIMITS = {"requests": 6000, "window_seconds": 300.0, "concurrent": 52, "execution_ms": 1_200_000}
LATENCY = {"kind": "latency", "seconds": 0.0, "count": 1, "path": "nowhere"}
ERROR = {"kind": "error", "status": 503, "retry_after": 1, "path": "nowhere"}
PLUGIN = {"name": "p", "entity": "lead", "kind": "reject", "message": "m", "messages": ["Create"]}
CASES = [
    Case("PUT", "/bypass", BYPASS, "granted", "flag", state=("/bypass",)),
    Case("PUT", "/bypass", BYPASS, "limit", "whole", nullable=True, state=("/bypass",)),
    Case("PUT", "/bypass", BYPASS, "user", "text", nullable=True, state=("/bypass",)),
    Case("POST", "/webhooks/pause", {"paused": False}, "paused", "flag"),
    Case("PUT", "/bulk-support", {"entity": "lead", "supported": True}, "supported", "flag"),
    Case("PUT", "/bulk-support", {"entity": "lead", "supported": True}, "entity", "text"),
    *(
        Case("PUT", "/limits", LIMITS, name, kind, nullable=name == "execution_ms", state=("/limits",))
        for name, kind in [("requests", "whole"), ("window_seconds", "number"), ("concurrent", "whole")]
    ),
    Case("PUT", "/limits", LIMITS, "execution_ms", "whole", nullable=True, state=("/limits",)),
    Case("POST", "/faults", LATENCY, "seconds", "number", state=("/faults",)),
    Case("POST", "/faults", LATENCY, "count", "whole", nullable=True, state=("/faults",)),
    Case("POST", "/faults", LATENCY, "path", "text", nullable=True, state=("/faults",)),
    Case("POST", "/faults", LATENCY, "kind", "text", state=("/faults",)),
    Case("POST", "/faults", ERROR, "status", "whole", state=("/faults",)),
    Case("POST", "/faults", ERROR, "retry_after", "whole", state=("/faults",)),
    Case("POST", "/faults", {"kind": "drop_webhooks", "count": 1}, "count", "whole", state=("/faults",)),
    Case("PUT", "/columns/lead/jobtitle", {"max_length": 100}, "max_length", "whole", nullable=True),
    Case(
        "PUT", "/columns/lead/jobtitle", {"required_level": "None"}, "required_level", "text", nullable=True
    ),
    Case(
        "PUT", "/columns/lead/leadsourcecode", {"options": {"9": "Fair"}}, "options", "object", nullable=True
    ),
    *(
        Case("POST", "/plugins", PLUGIN, name, "text", state=("/plugins",))
        for name in ("name", "entity", "kind")
    ),
    Case("POST", "/plugins", PLUGIN, "message", "text", nullable=True, state=("/plugins",)),
    Case("POST", "/plugins", PLUGIN, "messages", "list", state=("/plugins",)),
    Case("POST", "/rows/lead", {"rows": []}, "rows", "list", state=("/rows/lead",)),
]


ENTRA = [
    Case("POST", "/clock", {"advance_seconds": 0}, "advance_seconds", "number", state=("/state",)),
    Case("POST", "/faults", {"status": 503, "count": 1}, "status", "whole", state=("/state",)),
    Case("POST", "/faults", {"status": 503, "count": 1}, "count", "whole", state=("/state",)),
]


@pytest.fixture
def admin_url(sims: Sims, admin: DataverseAdmin) -> str:
    return f"{sims.url}/admin"


@pytest.fixture
def entra_url(sims: Sims, admin: DataverseAdmin) -> str:
    """The Entra simulator's admin API (reset with the Dataverse simulator's, by ``admin``)."""
    return f"{sims.entra_url}/admin"


def test_the_string_false_does_not_grant_the_bypass_privilege(admin_url: str, http: requests.Session) -> None:
    """The defect: ``granted`` was read by truthiness, and "false" granted the privilege."""
    assert http.put(f"{admin_url}/bypass", json={"user": HUMAN, "granted": False}, timeout=30).ok
    revoked = http.get(f"{admin_url}/bypass", timeout=30).json()
    assert revoked["lacking"], "the user lacks the privilege"

    answer = http.put(f"{admin_url}/bypass", json={"user": HUMAN, "granted": "false", "limit": 7}, timeout=30)

    assert answer.status_code == 400
    assert answer.json()["error"] == 'granted: must be true or false, not the string "false"'
    assert http.get(f"{admin_url}/bypass", timeout=30).json() == revoked  # nor the limit set


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_case_accepts_its_body(case: Case, admin_url: str, http: requests.Session) -> None:
    """So that a refusal below is the field's doing."""
    answer = send(http, admin_url, case, case.body)
    assert answer.status_code == 200, answer.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_field_of_the_wrong_json_type_is_refused_and_changes_nothing(
    data: st.DataObject, admin_url: str, http: requests.Session
) -> None:
    case = data.draw(st.sampled_from(CASES), label="case")
    assert_refused(http, admin_url, case, data.draw(wrong(case), label="value"))


@pytest.mark.parametrize("body", [b"{", b"[1]", b'"x"', b'{"user": "Jane Doe", "grnated": false}'])
def test_a_body_that_is_not_an_object_of_known_fields_is_refused(
    body: bytes, admin_url: str, http: requests.Session
) -> None:
    before = http.get(f"{admin_url}/bypass", timeout=30).json()
    answer = http.put(f"{admin_url}/bypass", data=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(("body: must be a JSON object", "grnated: must be left out"))
    assert http.get(f"{admin_url}/bypass", timeout=30).json() == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_entra_simulators_admin_fields_are_read_strictly_too(
    data: st.DataObject, entra_url: str, http: requests.Session
) -> None:
    case = data.draw(st.sampled_from(ENTRA), label="case")
    assert_refused(http, entra_url, case, data.draw(wrong(case), label="value"))


@pytest.mark.parametrize("case", ENTRA, ids=str)
def test_each_entra_case_accepts_its_body(case: Case, entra_url: str, http: requests.Session) -> None:
    assert send(http, entra_url, case, case.body).status_code == 200
