"""Contract test with an independent client: ``marketorestpython`` (the community client,
pointed at the simulator through ``mc.host``) must be able to do its usual work, which shows
that the simulator speaks what a real client expects (identity, bearer header, envelope, the
form-encoded ``_method=GET`` query, activity paging, the legacy DELETE)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from marketorestpython.client import MarketoClient as CommunityClient

from simulators.tls import TlsFiles
from tests.marketo.conftest import CLIENT_ID, CLIENT_SECRET, Marketo


@pytest.fixture
def community(marketo: Marketo, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> CommunityClient:
    # The library uses module-level requests calls and no verify option: trust the test CA
    # through the environment, as its README suggests.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_file))
    client = CommunityClient(
        "000-AAA-000", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, max_retry_time=5
    )
    client.host = marketo.url
    return client


def test_community_client_round_trip(community: CommunityClient, marketo: Marketo) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = community.execute(
        method="create_update_leads",
        leads=[
            {"email": "ana@contoso.com", "firstName": "Ana"},
            {"email": "bo@contoso.com", "firstName": "Bo"},
        ],
        action="createOrUpdate",
        lookupField="email",
    )
    assert [r["status"] for r in created] == ["created", "created"]
    ana_id = created[0]["id"]

    (ana,) = community.execute(method="get_lead_by_id", id=ana_id, fields=["email", "firstName", "msftType"])
    assert ana == {"email": "ana@contoso.com", "firstName": "Ana", "msftType": None}

    found = community.execute(
        method="get_multiple_leads_by_filter_type",
        filterType="email",
        filterValues=["ana@contoso.com", "bo@contoso.com", "nobody@contoso.com"],
        fields=["id", "firstName"],
    )
    assert sorted(p["firstName"] for p in found) == ["Ana", "Bo"]
    assert marketo.admin.calls()["methodOverrides"] == 1  # it always sends the POST form

    updated = community.execute(
        method="create_update_leads", leads=[{"email": "ana@contoso.com", "firstName": "Anna"}]
    )
    assert updated == [{"id": ana_id, "status": "updated"}]

    changes = community.execute(method="get_lead_changes", fields=["firstName"], sinceDatetime=since)
    assert [c["activityTypeId"] for c in changes] == [12, 12, 13]
    assert changes[-1]["fields"][0]["newValue"] == "Anna"

    deleted = community.execute(method="delete_lead", id=[ana_id])
    assert deleted == [{"id": ana_id, "status": "deleted"}]
    gone = community.execute(method="get_deleted_leads", sinceDatetime=since)
    assert [d["leadId"] for d in gone] == [ana_id]

    calls = marketo.admin.calls()
    assert calls["byErrorCode"] == {}
    assert calls["byEndpoint"]["DELETE /rest/v1/leads.json"] == 1


def test_community_client_sees_marketo_errors(community: CommunityClient) -> None:
    with pytest.raises(Exception, match="1006"):
        community.execute(method="get_lead_by_id", id=1, fields=["noSuchField"])
