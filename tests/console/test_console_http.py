"""The console's HTTP function through ``azure.functions`` objects and through the local host:
whom it trusts, CSRF, bad input, and its JSON twin's paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import azure.functions as func
import pytest
import requests

from functions.console import console as console_function
from mdsync.console_scene import Scene
from mdsync.harness import LocalSystem
from shared.bootstrap import reset_container
from shared.console.auth import encode_principal
from tests.console.conftest import sign_in

pytestmark = pytest.mark.timeout(240)
OPERATOR = encode_principal("oid-1", "ana@contoso.example", ["mdsync.operator"])


def request(
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    params: dict[str, str] | None = None,
) -> func.HttpResponse:
    response: func.HttpResponse = console_function(
        func.HttpRequest(
            method=method,
            url=f"https://func-mdsync.azurewebsites.net/api/console/{path}",
            headers=headers or {},
            params=params or {},
            route_params={"path": path},
            body=body,
        )
    )
    return response


@pytest.fixture
def platform_auth(system: LocalSystem, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in Azure with App Service authentication on (the function called directly)."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    reset_container()
    yield
    monkeypatch.undo()
    reset_container()


def test_the_principal_header_is_not_trusted_while_platform_auth_is_off(
    system: LocalSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "False")
    reset_container()
    try:
        answer = request("status.json", headers={"x-ms-client-principal": OPERATOR})
    finally:
        monkeypatch.undo()
        reset_container()
    assert answer.status_code == 401
    assert "App Service authentication" in json.loads(answer.get_body())["error"]


@pytest.mark.usefixtures("platform_auth")
def test_roles_come_from_the_principals_claims(system: LocalSystem, scene: Scene) -> None:
    assert request("status.json").status_code == 401
    visitor = encode_principal("oid-2", "bo@contoso.example", ["reader"])
    answer = request("status.json", headers={"x-ms-client-principal": visitor})
    assert answer.status_code == 403
    assert "mdsync.operator" in json.loads(answer.get_body())["error"]
    garbage = base64.b64encode(b"not json").decode()
    assert request("status.json", headers={"x-ms-client-principal": garbage}).status_code == 401
    # The role claim typed with the principal's role_typ URI, as App Service may map it.
    mapped = base64.b64encode(
        json.dumps(
            {
                "auth_typ": "aad",
                "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                "claims": [
                    {"typ": "name", "val": "cy@contoso.example"},
                    {
                        "typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                        "val": "mdsync.operator",
                    },
                ],
            }
        ).encode()
    ).decode()
    answer = request("status.json", headers={"x-ms-client-principal": mapped})
    assert answer.status_code == 200
    assert json.loads(answer.get_body())["backlog"]["total"] == len(scene.backlog_leads)


@pytest.mark.usefixtures("platform_auth")
def test_actions_need_the_pages_form_token(system: LocalSystem, scene: Scene) -> None:
    signed = {"x-ms-client-principal": OPERATOR, "content-type": "application/x-www-form-urlencoded"}
    assert request("actions/pause", method="POST", headers=signed).status_code == 403
    page = request("", headers={"x-ms-client-principal": OPERATOR})
    cookie = next(
        v for k, v in page.headers.items() if k.lower() == "set-cookie" and v.startswith("mdsync_csrf=")
    )
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" in cookie
    with_cookie = {**signed, "cookie": f"mdsync_csrf={token}"}
    wrong = request("actions/pause", method="POST", headers=with_cookie, body=b"csrf=" + b"x" * 43)
    assert wrong.status_code == 403
    cross = {**with_cookie, "origin": "https://evil.example"}
    assert (
        request("actions/pause", method="POST", headers=cross, body=f"csrf={token}".encode()).status_code
        == 403
    )
    site = {**with_cookie, "sec-fetch-site": "cross-site"}
    assert (
        request("actions/pause", method="POST", headers=site, body=f"csrf={token}".encode()).status_code
        == 403
    )
    assert system.deps.pause.current(fresh=True).paused is False
    done = request(
        "actions/pause", method="POST", headers=with_cookie, body=f"csrf={token}&reason=test".encode()
    )
    assert done.status_code == 303
    assert system.deps.pause.current(fresh=True).paused is True
    assert system.deps.operations.read_audit(1)[0].who == "ana@contoso.example"
    resumed = request(
        "actions/resume",
        method="POST",
        headers={**with_cookie, "x-csrf-token": token, "accept": "application/json"},
    )
    assert resumed.status_code == 200
    assert json.loads(resumed.get_body())["action"] == "resume"


@pytest.mark.usefixtures("platform_auth")
def test_bad_input_is_a_clear_4xx_and_changes_nothing(system: LocalSystem, scene: Scene) -> None:
    signed = {"x-ms-client-principal": OPERATOR}
    assert request("nope", headers=signed).status_code == 404
    assert request("errors.json", headers=signed, params={"cursor": "garbage"}).status_code == 400
    assert request("errors.json", headers=signed, params={"limit": "0"}).status_code == 400
    assert request("person/not-a-person", headers=signed).status_code == 400
    assert request("status.json", method="POST", headers=signed).status_code == 405
    page = request("", headers=signed)
    token = (
        next(v for k, v in page.headers.items() if k.lower() == "set-cookie").split(";")[0].split("=", 1)[1]
    )
    form = {**signed, "cookie": f"mdsync_csrf={token}", "x-csrf-token": token, "accept": "application/json"}
    answer = request(
        "actions/resync",
        method="POST",
        headers={**form, "content-type": "application/json"},
        body=b'{"person": "DROP TABLE"}',
    )
    assert answer.status_code == 400
    assert "not a person" in json.loads(answer.get_body())["error"]
    assert request("actions/launch", method="POST", headers=form).status_code == 404
    assert (
        request(
            "actions/replay", method="POST", headers={**form, "content-type": "text/xml"}, body=b"<x/>"
        ).status_code
        == 415
    )
    answer = request(
        "actions/replay", method="POST", headers={**form, "content-type": "application/json"}, body=b"{}"
    )
    assert answer.status_code == 400
    assert system.deps.operations.read_audit() == []


def test_error_pages_follow_their_cursor_through_the_local_host(system: LocalSystem, scene: Scene) -> None:
    assert system.host is not None
    session = sign_in(system.host.url)
    seen: list[str] = []
    cursor = ""
    while True:
        page = session.get(
            f"{system.host.url}/api/console/errors.json", params={"limit": "1", "cursor": cursor}
        ).json()
        seen += [e["key"] for e in page["errors"]]
        cursor = page["cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    groups = session.get(f"{system.host.url}/api/console/errors.json").json()["groups"]
    assert len(seen) == sum(g["errors"] for g in groups)


def test_webhooks_stay_reachable_with_their_keys_only(system: LocalSystem, scene: Scene) -> None:
    """The sign-in must not stand in the way of the webhooks (authsettingsV2 excludedPaths)."""
    assert system.host is not None
    answer = requests.post(
        system.host.function_url("dynamics_webhook"), data=b"{}", allow_redirects=False, timeout=10
    )
    assert answer.status_code == 401  # the function's own key check, not a sign-in redirect
    assert "location" not in answer.headers


@pytest.mark.usefixtures("platform_auth")
def test_the_page_can_discard_a_given_up_item_instead_of_replaying_it(
    system: LocalSystem, scene: Scene
) -> None:
    page = request("errors", headers={"x-ms-client-principal": OPERATOR})
    cookie = next(
        v for k, v in page.headers.items() if k.lower() == "set-cookie" and v.startswith("mdsync_csrf=")
    )
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    assert 'data-action="discard-selected"' in page.get_body().decode()
    (parked,) = system.deps.state.parked()
    signed = {
        "x-ms-client-principal": OPERATOR,
        "cookie": f"mdsync_csrf={token}",
        "x-csrf-token": token,
        "content-type": "application/json",
    }
    body = json.dumps({"key": [f"parked|{parked.dedup_id}"], "discard": "1"}).encode()
    answer = request("actions/replay", method="POST", headers=signed, body=body)
    assert answer.status_code == 200, answer.get_body()
    assert json.loads(answer.get_body())["action"] == "discard"
    assert system.deps.state.parked() == []
    assert system.queue.active_count() == len(scene.backlog_leads)  # nothing was queued
    assert system.deps.operations.get_errors([f"parked|{parked.dedup_id}"]) == {}
    assert system.deps.operations.read_audit(1)[0].action == "discard"
