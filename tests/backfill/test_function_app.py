"""The backfill inside the function app: an administrator's call (the master key) starts it,
messages on its own queue advance it step by step, and a read function shows its progress."""

from __future__ import annotations

from typing import Any

import requests

from mdsync.harness import HOST_KEY, MASTER_KEY, LocalSystem
from shared.backfill.steps import Step
from tests.backfill.conftest import CREATED_FROM, World

ADMIN = {"x-functions-key": MASTER_KEY}
SINCE = CREATED_FROM.isoformat()  # a few 31-day windows of persons to export, not twenty years


def url(system: LocalSystem) -> str:
    assert system.host is not None
    return f"{system.host.url}/api/backfill"


def status(system: LocalSystem) -> dict[str, Any]:
    response = requests.get(url(system), headers=ADMIN, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_admin_call_starts_the_job_and_queue_steps_run_it_to_the_end(
    world: World, system: LocalSystem
) -> None:
    world.person("ana", email="ana@fabrikam.example", lastName="Lopez")
    world.record("ana", emailaddress1="ana@fabrikam.example", lastname="Lopez", jobtitle="CTO")
    world.record("cy", emailaddress1="cy@tailspin.example", lastname="Chan")
    assert requests.get(url(system), headers=ADMIN, timeout=30).status_code == 404  # none yet

    body = {"created_from": SINCE, "ambiguous": "prefer_contact"}
    started = requests.post(url(system), json=body, headers=ADMIN, timeout=30)

    assert started.status_code == 202, started.text
    job_id = started.json()["job"]["id"]
    done = system.until(lambda: (s := status(system))["status"] == "done" and s, timeout=120)
    assert done["id"] == job_id
    assert done["options"]["ambiguous"] == "prefer_contact"
    assert done["counts"]["pairs_by_email"] == 1
    assert done["counts"]["persons_created"] == 1
    assert done["phases"]["match_emails"]["done"] == done["phases"]["match_emails"]["total"]
    assert done["calls"]["marketo"] > 0
    assert world.linked("ana", "ana")
    assert world.marketo("ana")["title"] == "CTO"


def test_the_calls_need_the_master_key_and_a_valid_body(system: LocalSystem) -> None:
    for headers in ({}, {"x-functions-key": HOST_KEY}):
        assert requests.post(url(system), json={}, headers=headers, timeout=30).status_code == 401
        assert requests.get(url(system), headers=headers, timeout=30).status_code == 401
    bad = [
        ({"dry_run": "maybe"}, "dry_run"),
        ({"ambiguous": "guess"}, "ambiguous"),
        ({"since": "last tuesday"}, "since"),
        ({"colour": "blue"}, "unknown option"),
        ({"restart": 1}, "restart"),
    ]
    for body, named in bad:
        response = requests.post(url(system), json=body, headers=ADMIN, timeout=30)
        assert response.status_code == 400, (body, response.text)
        assert named in response.json()["error"]
    text = requests.post(
        url(system), data="[", headers={**ADMIN, "Content-Type": "application/json"}, timeout=30
    )
    assert text.status_code == 400
    assert requests.get(url(system), headers=ADMIN, timeout=30).status_code == 404  # nothing started


def test_a_running_job_is_resumed_not_replaced_unless_asked(world: World, system: LocalSystem) -> None:
    world.record("cy", emailaddress1="cy@tailspin.example", lastname="Chan")
    with system.worker_held():  # the steps wait in the queue: the job stays unfinished
        first = requests.post(
            url(system), json={"dry_run": True, "created_from": SINCE}, headers=ADMIN, timeout=30
        )
        assert first.status_code == 202
        again = requests.post(url(system), json={"dry_run": False}, headers=ADMIN, timeout=30)
        assert again.status_code == 409
        assert "--restart" in again.json()["error"] or "restart" in again.json()["error"]
        resumed = requests.post(url(system), headers=ADMIN, timeout=30)  # no body: resume
        assert resumed.status_code == 202
        assert resumed.json()["job"]["id"] == first.json()["job"]["id"]
    previewed = system.until(lambda: (s := status(system))["status"] == "previewed" and s, timeout=120)
    assert previewed["id"] == first.json()["job"]["id"]
    assert previewed["counts"]["persons_to_create"] == 1


def test_a_step_message_for_another_job_or_an_old_step_is_dropped(world: World, system: LocalSystem) -> None:
    started = requests.post(
        url(system), json={"dry_run": True, "created_from": SINCE}, headers=ADMIN, timeout=30
    )
    job_id = started.json()["job"]["id"]
    system.until(lambda: status(system)["status"] == "previewed", timeout=120)
    steps = status(system)["steps"]
    assert steps >= 1
    system.backfill_queue.send_raw([Step("bf-unknown", 1).message(), Step(job_id, 1, retry=3).message()])
    system.wait_idle(30)
    after = status(system)
    assert after["status"] == "previewed"
    assert after["steps"] == steps  # neither message ran a step
