"""The Marketo simulator's admin API reads its bodies strictly, as the Dataverse simulator's does:
a wrong JSON type is a 400 naming the field, and changes nothing (tests/strict_admin.py)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.marketo.conftest import Marketo
from tests.strict_admin import Case, assert_refused, send, wrong

LIMITS = {"rateLimit": 100, "rateWindowSeconds": 20.0, "dailyQuota": 50_000}
BULK = {"maxProcessing": 2, "fileRetentionDays": 7.0, "unsupportedFilters": [], "paused": False}
HOOK = {"name": "h", "url": "https://example.invalid/hook", "method": "POST", "template": "{}"}
CAMPAIGN = {"name": "c", "webhook": "h", "triggers": [{"type": "Person is Created"}], "active": True}
CASES = [
    Case("PUT", "/campaigns", {"paused": False}, "paused", "flag", state=("/campaigns",)),
    Case("POST", "/campaigns", CAMPAIGN, "active", "flag", state=("/campaigns",)),
    *(
        Case("PUT", "/bulk", BULK, name, kind, state=("/bulk",))
        for name, kind in [
            ("paused", "flag"),
            ("maxProcessing", "whole"),
            ("fileRetentionDays", "number"),
            ("unsupportedFilters", "list"),
        ]
    ),
    Case("PUT", "/bulk", {"exportUsedBytes": 0}, "exportUsedBytes", "whole", nullable=True, state=("/bulk",)),
    Case("PUT", "/bulk", {"cutDownloads": []}, "cutDownloads", "list", state=("/bulk",)),
    *(
        Case("PUT", "/limits", LIMITS, name, kind, state=("/limits",))
        for name, kind in [("rateLimit", "whole"), ("rateWindowSeconds", "number"), ("dailyQuota", "whole")]
    ),
    Case("POST", "/faults", {"code": "606", "count": 1}, "code", "text", state=("/faults",)),
    Case("POST", "/faults", {"code": "606", "count": 1}, "count", "whole", state=("/faults",)),
    Case("POST", "/faults", {"latencyMs": 0, "count": 1}, "latencyMs", "number", state=("/faults",)),
    Case("POST", "/faults", {"refuse": "X", "count": 1}, "refuse", "text", state=("/faults",)),
    Case("PUT", "/quota", {"dailyQuota": 50_000}, "dailyQuota", "whole", nullable=True, state=("/calls",)),
    Case("PUT", "/api-partitions", {"partitions": None}, "partitions", "list", nullable=True),
    Case("PATCH", "/ui/persons/1001", {"fields": {"title": "CTO"}}, "fields", "object", state=("/persons",)),
    Case("POST", "/ui/persons/1001/merge", {"losers": [1002]}, "losers", "list", state=("/persons",)),
    Case("POST", "/webhooks", HOOK, "template", "text", state=("/webhooks",)),
    Case("POST", "/webhooks", HOOK, "method", "text", state=("/webhooks",)),
    Case("POST", "/webhooks/h/fire", {"leadId": 1001}, "leadId", "whole", state=("/persons",)),
]


@pytest.fixture
def admin_url(marketo: Marketo) -> str:
    marketo.admin.seed_persons([{"email": "a@fabrikam.example"}, {"email": "b@fabrikam.example"}])
    url = f"{marketo.url}/admin"
    assert marketo.session.post(f"{url}/webhooks", json=HOOK, timeout=30).ok
    return url


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_case_accepts_its_body(case: Case, admin_url: str, marketo: Marketo) -> None:
    """So that a refusal below is the field's doing."""
    answer = send(marketo.session, admin_url, case, case.body)
    assert answer.status_code == 200, answer.text


def test_the_string_false_does_not_pause_campaigns(admin_url: str, marketo: Marketo) -> None:
    answer = marketo.session.put(f"{admin_url}/campaigns", json={"paused": "false"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"] == 'paused: must be true or false, not the string "false"'
    assert marketo.admin.campaigns()["paused"] is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_field_of_the_wrong_json_type_is_refused_and_changes_nothing(
    data: st.DataObject, admin_url: str, marketo: Marketo
) -> None:
    case = data.draw(st.sampled_from(CASES), label="case")
    assert_refused(marketo.session, admin_url, case, data.draw(wrong(case), label="value"))
