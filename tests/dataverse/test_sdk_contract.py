"""Contract test: Microsoft's own Dataverse SDK for Python (PowerPlatform-Dataverse-Client)
against the simulator. An independent client that works unchanged is the evidence that the
simulator speaks the real Web API (URLs, headers, entity set resolution, picklist metadata,
OData-EntityId, bulk messages, paging), not merely what our client happens to send."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from PowerPlatform.Dataverse.client import DataverseClient as SdkClient
from PowerPlatform.Dataverse.core.errors import HttpError
from PowerPlatform.Dataverse.models.upsert import UpsertItem

from shared.dataverse.auth import CredentialTokens
from simulators.dataverse.admin import DataverseAdmin
from simulators.tls import TlsFiles

from .conftest import APP_USER, Sims


class ProviderCredential:
    """azure-core's TokenCredential protocol over our azure-identity token provider."""

    def __init__(self, provider: CredentialTokens) -> None:
        self.provider = provider
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.provider.get_token().token, int(time.time()) + 3000)


@pytest.fixture
def sdk(
    sims: Sims, tls: TlsFiles, tokens: CredentialTokens, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SdkClient, ProviderCredential]]:
    # The SDK makes its own requests.Session; requests trusts REQUESTS_CA_BUNDLE for it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_file))
    credential = ProviderCredential(tokens)
    with SdkClient(sims.url, credential) as client:
        yield client, credential


def test_sdk_create_get_update_query_delete(
    sdk: tuple[SdkClient, ProviderCredential], admin: DataverseAdmin
) -> None:
    client, credential = sdk
    # A picklist label: the SDK resolves it through PicklistAttributeMetadata with OptionSet.
    lead_id = client.records.create(
        "lead", {"firstname": "Ana", "lastname": "O'Lopez", "leadsourcecode": "Web"}
    )
    assert credential.scopes[0].endswith("/.default")
    record = client.records.retrieve("lead", lead_id, select=["fullname", "leadsourcecode", "_ownerid_value"])
    assert record is not None
    assert (record["fullname"], record["leadsourcecode"], record["_ownerid_value"]) == (
        "Ana O'Lopez",
        8,
        APP_USER,
    )
    assert record.etag is not None
    assert record.etag.startswith('W/"')
    client.records.update("lead", lead_id, {"jobtitle": "CTO"})
    found = client.records.list("lead", filter="lastname eq 'O''Lopez'", select=["jobtitle"])
    assert [r["jobtitle"] for r in found] == ["CTO"]
    client.records.delete("lead", lead_id)
    assert client.records.retrieve("lead", lead_id) is None
    assert admin.rows("lead") == []


def test_sdk_bulk_create_update_and_paging(
    sdk: tuple[SdkClient, ProviderCredential], admin: DataverseAdmin
) -> None:
    client, _ = sdk
    ids = client.records.create("lead", [{"lastname": f"Bulk{i:02}"} for i in range(12)])
    assert len(ids) == 12
    client.records.update("lead", ids, {"jobtitle": "Analyst"})
    pages = list(
        client.records.list_pages("lead", select=["lastname", "jobtitle"], orderby=["lastname"], page_size=5)
    )
    assert [len(p) for p in pages] == [5, 5, 2]
    rows = [r for page in pages for r in page]
    assert [r["lastname"] for r in rows] == [f"Bulk{i:02}" for i in range(12)]
    assert {r["jobtitle"] for r in rows} == {"Analyst"}
    calls = admin.calls()
    assert calls["POST leads/CreateMultiple"] == 1
    assert calls["POST leads/UpdateMultiple"] == 1


def test_sdk_upsert_by_alternate_key(
    sdk: tuple[SdkClient, ProviderCredential], admin: DataverseAdmin
) -> None:
    client, _ = sdk
    client.records.upsert(
        "lead", [UpsertItem(alternate_key={"mdsync_marketoid": "9"}, record={"lastname": "Keyed"})]
    )
    client.records.upsert(
        "lead", [UpsertItem(alternate_key={"mdsync_marketoid": "9"}, record={"jobtitle": "Boss"})]
    )
    client.records.upsert(
        "lead",
        [
            UpsertItem(alternate_key={"mdsync_marketoid": "10"}, record={"lastname": "Ten"}),
            UpsertItem(alternate_key={"mdsync_marketoid": "11"}, record={"lastname": "Eleven"}),
        ],
    )
    rows = {r["mdsync_marketoid"]: r for r in admin.rows("lead")}
    assert set(rows) == {"9", "10", "11"}
    assert (rows["9"]["lastname"], rows["9"]["jobtitle"]) == ("Keyed", "Boss")


def test_sdk_sees_dataverse_errors(sdk: tuple[SdkClient, ProviderCredential], admin: DataverseAdmin) -> None:
    client, _ = sdk
    with pytest.raises(HttpError) as caught:
        client.records.create("lead", {"lastname": "x" * 51})
    assert caught.value.status_code == 400
    assert caught.value.details["service_error_code"] == "0x80044331"
    admin.throttle(1, retry_after=7, path="leads")
    with pytest.raises(HttpError) as throttled:
        client.records.create("lead", {"lastname": "later"})
    assert (throttled.value.status_code, throttled.value.details["retry_after"]) == (429, 7)
    assert throttled.value.is_transient


def test_sdk_table_metadata(sdk: tuple[SdkClient, ProviderCredential]) -> None:
    client, _ = sdk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        info = client.tables.get("lead")
    assert info is not None
    assert info["entity_set_name"] == "leads"
    assert info["primary_id_attribute"] == "leadid"
