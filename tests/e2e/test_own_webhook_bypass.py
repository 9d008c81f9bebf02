"""mdsync's own Dataverse writes do not wake its own webhook (MSCRM.BypassBusinessLogicExecutionStepIds):
every other step still runs, a refused header never costs a write, and nothing depends on the
echo (a value a customer's plug-in changed on mdsync's write comes back with the sweep)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mdsync.harness import LocalSystem
from shared.bootstrap import reset_container
from shared.capture.registration import webhook_steps
from simulators.stack import SYNC_USER_ID


def linked_lead(system: LocalSystem, email: str) -> tuple[str, int]:
    lead_id = system.dataverse_admin.create_as(
        "Jane Doe", "leads", {"firstname": "Ana", "lastname": "Lopez", "emailaddress1": email}
    )
    system.wait_idle()
    person = system.until(
        lambda: [p for p in system.marketo_admin.persons() if p.get("msftLeadId") == lead_id]
    )[0]
    return lead_id, int(person["id"])


def title(system: LocalSystem, lead_id: str) -> Any:
    row = system.dataverse_admin.row("lead", lead_id)
    assert row is not None
    return row["jobtitle"]


def jobs_for(system: LocalSystem, lead_id: str, steps: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        job
        for job in system.dataverse_admin.jobs()
        if job["regardingobjectid"] == lead_id and job["owningextensionid"] in steps
    ]


def edit_in_marketo(system: LocalSystem, person_id: int, value: str) -> None:
    system.marketo_admin.user_edit(person_id, {"title": value})
    system.sync()


def test_mdsyncs_writes_do_not_run_its_webhook_and_every_other_step_still_runs(system: LocalSystem) -> None:
    lead_id, person_id = linked_lead(system, "ana@bypass.example")
    # A customer's own webhook on the same messages (its receiver refuses it: the job still runs).
    customer = system.deps.dataverse.register_webhook(
        "customer",
        _host(system).function_url("dynamics_webhook"),
        {"x-mdsync-key": "not-the-customers-secret"},
        webhook_steps(system.deps.mapping),
    )
    ours = _our_steps(system)
    before = len(jobs_for(system, lead_id, ours))
    edit_in_marketo(system, person_id, "CFO")
    assert title(system, lead_id) == "CFO"
    assert len(jobs_for(system, lead_id, ours)) == before
    assert jobs_for(system, lead_id, customer.step_ids)
    # A person's own edit in Dynamics still runs mdsync's webhook and syncs.
    system.dataverse_admin.update_as("Jane Doe", "leads", lead_id, {"jobtitle": "CEO"})
    system.wait_idle()
    assert len(jobs_for(system, lead_id, ours)) == before + 1
    system.until(lambda: system.marketo_admin.person(person_id).get("title") == "CEO")


def _host(system: LocalSystem) -> Any:
    assert system.host is not None
    return system.host


def _our_steps(system: LocalSystem) -> tuple[str, ...]:
    rows = system.deps.dataverse.query(
        "sdkmessageprocessingsteps", select=["sdkmessageprocessingstepid", "name"]
    )
    return tuple(
        str(r["sdkmessageprocessingstepid"]) for r in rows if str(r["name"]).startswith("mdsync-local:")
    )


def test_a_refused_header_costs_no_write_and_is_not_sent_again(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    reset_container()  # a process that has not met the refusal yet
    try:
        lead_id, person_id = linked_lead(system, "ben@bypass.example")
        system.dataverse_admin.grant_bypass(SYNC_USER_ID, granted=False)
        ours = _our_steps(system)
        before = len(jobs_for(system, lead_id, ours))
        with caplog.at_level(logging.WARNING, logger="shared.dataverse.bypass"):
            edit_in_marketo(system, person_id, "CFO")
            assert title(system, lead_id) == "CFO"
            edit_in_marketo(system, person_id, "CTO")
            assert title(system, lead_id) == "CTO"
        # Both writes ran the webhook again (their echoes were set aside as before).
        assert len(jobs_for(system, lead_id, ours)) == before + 2
        warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(warnings) == 1
        assert "prvBypassCustomBusinessLogic" in warnings[0]
        assert system.marketo_admin.person(person_id).get("title") == "CTO"
    finally:
        reset_container()


def test_a_value_a_plugin_changed_on_mdsyncs_write_comes_back_with_the_sweep(system: LocalSystem) -> None:
    lead_id, person_id = linked_lead(system, "cy@bypass.example")
    system.dataverse_admin.add_plugin("upper-title", "lead", "upper", column="jobtitle")
    edit_in_marketo(system, person_id, "cto")
    # The plug-in stored its own value; no echo of mdsync's write told mdsync so.
    assert title(system, lead_id) == "CTO"
    assert system.marketo_admin.person(person_id).get("title") == "cto"
    system.sweep()
    system.wait_idle()
    system.until(lambda: system.marketo_admin.person(person_id).get("title") == "CTO")


def test_the_sweep_sets_mdsyncs_own_unchanged_write_aside_without_reading(system: LocalSystem) -> None:
    """The sweep's notice is the only one a bypassed write gets: with the row's values equal to
    the shadow it is an echo, so no person is read (Marketo's quota) and nothing is written."""
    lead_id, person_id = linked_lead(system, "di@bypass.example")
    edit_in_marketo(system, person_id, "CFO")
    assert title(system, lead_id) == "CFO"
    system.marketo_admin.reset_calls()
    log_before = len(system.deps.state.read_log(marketo_id=person_id))
    system.sweep()
    system.wait_idle()
    calls = system.marketo_admin.calls()
    assert calls["byEndpoint"] == {}, calls
    assert len(system.deps.state.read_log(marketo_id=person_id)) == log_before
