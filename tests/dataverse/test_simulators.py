"""The simulators' own contract, over raw HTTP: what the Web API and Entra ID answer, beyond
what DataverseClient happens to use."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.dataverse.auth import CredentialTokens
from simulators.dataverse.admin import AdminError, DataverseAdmin
from simulators.entra import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT

from .conftest import Sims, lead


@pytest.fixture
def api(sims: Sims, http: requests.Session, tokens: CredentialTokens, admin: DataverseAdmin) -> Any:
    headers = {"Authorization": f"Bearer {tokens.get_token().token}", "Accept": "application/json"}

    def call(method: str, path: str, body: Any = None, **extra: Any) -> requests.Response:
        return http.request(
            method,
            f"{sims.api_url}/{path}",
            json=body,
            headers={**headers, **extra.pop("headers", {})},
            timeout=10,
            **extra,
        )

    return call


# --- Entra ID --------------------------------------------------------------------------------


def test_openid_configuration(sims: Sims, http: requests.Session) -> None:
    config = http.get(f"{sims.authority}/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert config["token_endpoint"] == f"{sims.authority}/oauth2/v2.0/token"
    assert config["issuer"] == f"{sims.authority}/v2.0"
    assert "authorization_endpoint" in config


@pytest.mark.parametrize(
    "case",
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://x.example/user_impersonation"}, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"grant_type": ""}, 400, "invalid_request", 900144),
    ],
)
def test_token_errors(sims: Sims, http: requests.Session, case: tuple[dict[str, str], int, str, int]) -> None:
    form, status, error, code = case
    body = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": f"{sims.url}/.default",
        **form,
    }
    response = http.post(f"{sims.authority}/oauth2/v2.0/token", data=body, timeout=10)
    assert response.status_code == status
    answer = response.json()
    assert (answer["error"], answer["error_codes"]) == (error, [code])
    assert answer["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(answer)


def test_token_success_shape(sims: Sims, http: requests.Session) -> None:
    body = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": f"{sims.url}/.default",
    }
    answer = http.post(f"{sims.authority}/oauth2/v2.0/token", data=body, timeout=10).json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == answer["ext_expires_in"] == 3599
    claims = sims.entra.verify(answer["access_token"], audience=sims.url)
    assert (claims.appid, claims.tenant_id) == (DEFAULT_CLIENT_ID, DEFAULT_TENANT)


def test_forged_token_is_rejected(api: Any, sims: Sims, http: requests.Session) -> None:
    good = api("GET", "WhoAmI").request.headers["Authorization"]
    head, payload, _ = good.split(" ", 1)[1].split(".")
    response = http.get(
        f"{sims.api_url}/WhoAmI", headers={"Authorization": f"Bearer {head}.{payload}.AAAA"}, timeout=10
    )
    assert response.status_code == 401
    assert "signature" in response.json()["error"]["message"]


# --- Web API ---------------------------------------------------------------------------------


def test_filter_errors(api: Any) -> None:
    unterminated = api("GET", "leads", params={"$filter": "lastname eq 'O'Bryan'"})
    assert unterminated.status_code == 400
    assert unterminated.json()["error"]["message"].startswith("There is an unterminated string literal")
    typed = api("GET", "leads", params={"$filter": "statuscode eq '1'"})
    assert "incompatible types" in typed.json()["error"]["message"]
    unquoted = api(
        "GET",
        "leads",
        params={"$filter": "Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=[1,2])"},
    )
    assert (
        unquoted.json()["error"]["message"]
        == "Cannot convert the literal '1' to the expected type 'Edm.String'."
    )
    tracked = api(
        "GET", "leads", params={"$filter": "statecode eq 0"}, headers={"Prefer": "odata.track-changes"}
    )
    assert (
        tracked.json()["error"]["message"]
        == 'The "$filter" query parameter isn\'t supported when Change Tracking is enabled.'
    )


def test_filter_semantics(api: Any, admin: DataverseAdmin) -> None:
    admin.seed(
        "lead",
        [
            lead(lastname="Alpha", leadsourcecode=8),
            lead(lastname="beta"),
            lead(lastname="Gamma", donotemail=True),
        ],
    )

    def names(flt: str) -> list[str]:
        return sorted(
            r["lastname"]
            for r in api("GET", "leads", params={"$filter": flt, "$select": "lastname"}).json()["value"]
        )

    assert names("lastname eq 'ALPHA'") == ["Alpha"]
    assert names("not (startswith(lastname,'a') or startswith(lastname,'B'))") == ["Gamma"]
    assert names("endswith(lastname,'A')") == ["Alpha", "Gamma", "beta"]
    assert names("leadsourcecode eq null and donotemail eq false") == ["beta"]
    assert names("lastname gt 'b' and lastname le 'GAMMA'") == ["Gamma", "beta"]
    assert names(
        "Microsoft.Dynamics.CRM.NotIn(PropertyName='lastname',PropertyValues=[\"alpha\",'Beta'])"
    ) == ["Gamma"]
    assert names("createdon ge 2000-01-01T00:00:00Z and contains(lastname,'_amma')") == ["Gamma"]


def test_count_and_single_property_shapes(api: Any, admin: DataverseAdmin) -> None:
    ids = admin.seed("lead", [lead(), lead()])
    body = api("GET", "leads", params={"$count": "true", "$select": "lastname"}).json()
    assert body["@odata.count"] == 2
    assert body["@odata.context"].endswith("/$metadata#leads(lastname)")
    assert api("GET", "leads/$count").text == "2"
    etag = api("GET", f"leads({ids[0]})", params={"$select": "lastname"}).json()["@odata.etag"]
    assert api("GET", f"leads({ids[0]})", headers={"If-None-Match": etag}).status_code == 304


def test_upsert_statuses_with_representation(api: Any) -> None:
    prefer = {"Prefer": "return=representation"}
    created = api(
        "PATCH",
        "leads(mdsync_marketoid='88')",
        {"lastname": "New"},
        headers=prefer,
        params={"$select": "mdsync_marketoid"},
    )
    assert created.status_code == 201
    assert created.json()["mdsync_marketoid"] == "88"
    updated = api(
        "PATCH", "leads(mdsync_marketoid='88')", {"lastname": "Old", "mdsync_marketoid": "99"}, headers=prefer
    )
    assert updated.status_code == 200
    assert updated.json()["mdsync_marketoid"] == "88"  # key columns in the body are dropped
    plain = api("PATCH", "leads(mdsync_marketoid='88')", {"jobtitle": "x"})
    assert plain.status_code == 204
    assert "/api/data/v9.2/leads(" in plain.headers["OData-EntityId"]
    missing = api("PATCH", "leads(mdsync_marketoid='404')", {"jobtitle": "x"}, headers={"If-Match": "*"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "0x80060891")


def test_unknown_resources(api: Any) -> None:
    response = api("GET", "widgets")
    assert (response.status_code, response.json()["error"]["message"]) == (
        404,
        "Resource not found for the segment 'widgets'.",
    )
    assert api("POST", "leads/Microsoft.Dynamics.CRM.Explode", {}).status_code == 404


def test_error_annotations_on_request(api: Any) -> None:
    response = api(
        "POST", "leads", {"firstname": "x" * 51}, headers={"Prefer": 'odata.include-annotations="*"'}
    )
    error = response.json()["error"]
    assert error["code"] == "0x80044331"
    assert "@Microsoft.PowerApps.CDS.HelpLink" in error


def test_metadata_casts_and_option_sets(api: Any) -> None:
    base = "EntityDefinitions(LogicalName='lead')/Attributes"
    without_cast = api("GET", base, params={"$select": "LogicalName,MaxLength"})
    assert without_cast.status_code == 400
    assert "MaxLength" in without_cast.json()["error"]["message"]
    strings = api(
        "GET",
        f"{base}/Microsoft.Dynamics.CRM.StringAttributeMetadata",
        params={"$select": "LogicalName,MaxLength,FormatName", "$filter": "LogicalName eq 'emailaddress1'"},
    ).json()["value"]
    assert [(s["LogicalName"], s["MaxLength"], s["FormatName"]["Value"]) for s in strings] == [
        ("emailaddress1", 100, "Email")
    ]
    status = api(
        "GET",
        f"{base}(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata",
        params={"$expand": "OptionSet"},
    ).json()
    options = {
        o["Value"]: (o["Label"]["UserLocalizedLabel"]["Label"], o["State"])
        for o in status["OptionSet"]["Options"]
    }
    assert options[3] == ("Qualified", 1)
    boolean = api(
        "GET", f"{base}(LogicalName='donotemail')/Microsoft.Dynamics.CRM.BooleanAttributeMetadata/OptionSet"
    ).json()
    assert boolean["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"] == "Do Not Allow"
    required = api(
        "GET",
        base,
        params={
            "$select": "LogicalName",
            "$filter": "RequiredLevel/Value eq "
            "Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'",
        },
    ).json()["value"]
    assert sorted(r["LogicalName"] for r in required) == ["lastname", "subject"]
    table = api(
        "GET",
        "EntityDefinitions(LogicalName='contact')",
        params={"$select": "ChangeTrackingEnabled,IsOptimisticConcurrencyEnabled"},
    ).json()
    assert (table["ChangeTrackingEnabled"], table["IsOptimisticConcurrencyEnabled"]) == (True, True)
    keys = api("GET", "EntityDefinitions(LogicalName='lead')/Keys").json()["value"]
    assert keys[0]["KeyAttributes"] == ["mdsync_marketoid"]
    assert b'<EntitySet Name="leads"' in api("GET", "$metadata").content


def test_batch_edge_cases(api: Any, sims: Sims, http: requests.Session) -> None:
    malformed = api("POST", "$batch", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.headers["Content-Type"].startswith("application/json")
    body = (
        "--b1\r\nContent-Type: multipart/mixed; boundary=c1\r\n\r\n"
        "--c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "GET /api/data/v9.2/leads HTTP/1.1\r\n\r\n\r\n--c1--\r\n--b1--\r\n"
    )
    response = http.post(
        f"{sims.api_url}/$batch",
        data=body.encode(),
        headers={
            "Authorization": api("GET", "WhoAmI").request.headers["Authorization"],
            "Content-Type": "multipart/mixed; boundary=b1",
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert "GET requests are not allowed inside a change set" in response.text


def test_admin_as_unknown_user_and_seeding_closed_rows(admin: DataverseAdmin) -> None:
    with pytest.raises(AdminError) as caught:
        admin.create_as("Nobody", "leads", lead())
    assert caught.value.status == 404
    [row_id] = admin.seed("lead", [lead(statecode=1, statuscode=3)])
    row = admin.row("lead", row_id)
    assert row is not None
    assert (row["statecode"], row["statuscode@OData.Community.Display.V1.FormattedValue"]) == (1, "Qualified")
    assert admin.jobs() == []
