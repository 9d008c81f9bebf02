"""Failures: Dynamics refuses the lead (answered 200 ``failed``, logged on the person's Activity
Log), Dataverse unavailable (503 after bounded retries, nothing changed), and the time budget."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mdsync.harness import LocalSystem
from shared.errors import TransientError
from shared.flow_step import SyncPersonToMicrosoft, TimeBudget
from shared.marketo.limiter import RateShareSpentError

from .conftest import failures_logged, leads, linked, new_person, post, snapshot

ISV_ABORTED = "0x80040265"


def _with_clock(flow: SyncPersonToMicrosoft, clock: Callable[[], float]) -> SyncPersonToMicrosoft:
    """The same flow step and clients, on a clock the test moves (no sleeping)."""
    return SyncPersonToMicrosoft(
        flow.marketo,
        flow.dataverse,
        flow.state,
        flow.mapping,
        flow.activity_log,
        columns=flow.columns,
        budget=TimeBudget(),
        clock=clock,
    )


def test_a_missing_required_column_fails_and_goes_to_the_activity_log(system: LocalSystem) -> None:
    system.dataverse_admin.set_column("lead", "jobtitle", required_level="SystemRequired")
    pid = new_person(system, email="ana@fabrikam.example")  # no title

    answer = post(system, {"marketoId": pid})

    assert answer.status == 200
    assert answer.body["status"] == "failed"
    assert "jobtitle" in answer.body["reason"]
    assert leads(system) == []
    (failure,) = failures_logged(system, pid)
    assert failure["errorCode"] == "mdsync-validation"
    assert failure["fields"] == "jobtitle"
    assert failure["entity"] == "lead"
    assert "jobtitle" in failure["errorMessage"]
    (entry,) = [e for e in system.deps.state.read_log(marketo_id=pid) if e.action == "failed"]
    assert "jobtitle" in entry.detail
    assert linked(system, pid) is None


def test_a_business_rule_refusal_carries_dynamics_own_code_and_message(system: LocalSystem) -> None:
    system.dataverse_admin.add_plugin(
        "phone-format",
        "lead",
        "regex",
        column="telephone1",
        pattern=r"^\+[0-9 ]+$",
        message="Business Phone must be in international format (+country number).",
    )
    pid = new_person(system, email="ana@fabrikam.example", phone="555-0100")

    answer = post(system, {"marketoId": pid})

    assert answer.status == 200
    assert answer.body == {
        "status": "failed",
        "reason": "Business Phone must be in international format (+country number).",
    }
    assert leads(system) == []
    (failure,) = failures_logged(system, pid)
    assert failure["errorCode"] == ISV_ABORTED
    assert failure["errorMessage"] == answer.body["reason"]


def test_a_marketo_value_without_a_dynamics_option_fails(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example", leadSource="Carrier Pigeon")

    answer = post(system, {"marketoId": pid})

    assert answer.body["status"] == "failed"
    assert "Carrier Pigeon" in answer.body["reason"]
    assert leads(system) == []
    assert [f["errorCode"] for f in failures_logged(system, pid)] == ["mdsync-option"]


def test_dataverse_unavailable_answers_503_and_changes_nothing(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    before = snapshot(system)
    system.dataverse_admin.fail(count=1000, status=503)
    try:
        answer = post(system, {"marketoId": pid})
    finally:
        system.dataverse_admin.clear_faults()

    assert answer.status == 503
    assert "dataverse" in answer.body["error"]
    assert int(answer.headers["retry-after"]) >= 1
    assert snapshot(system) == before


def test_a_short_dataverse_outage_is_retried_within_the_budget(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    system.dataverse_admin.fail(count=2, status=503)

    answer = post(system, {"marketoId": pid})

    assert answer.body["status"] == "created"
    assert flow.dataverse.calls["POST $batch"] == 3  # two refused, then answered
    assert len(leads(system)) == 1


def test_the_flow_steps_clients_retry_well_inside_marketos_30_seconds(flow: SyncPersonToMicrosoft) -> None:
    """Marketo gives up after 30 s. A step starts only with a whole call's time (timeout plus
    retries) left before the deadline, so the answer comes by the deadline."""
    budget = flow.budget
    assert budget.total_seconds <= 25
    assert budget.call_seconds <= budget.total_seconds / 2
    # A Marketo call may first wait for the step's reserved rate, and the first one still fits.
    assert budget.seconds_for("marketo") == budget.call_seconds + budget.rate_wait_seconds
    assert budget.seconds_for("marketo") < budget.total_seconds
    assert flow.marketo._transport.max_rate_wait == budget.rate_wait_seconds
    # The clients really carry that budget (the worker's clients retry for 10 s, time out at 30 s).
    assert flow.dataverse._transport.retry_budget_seconds == budget.retry_seconds
    assert flow.dataverse._transport.timeout == budget.attempt_timeout_seconds
    assert flow.marketo._transport.retry_budget_seconds == budget.retry_seconds
    assert flow.marketo._transport.timeout == budget.attempt_timeout_seconds


def test_no_step_starts_that_could_outlive_the_webhook(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    """The person was read, then the time is up: no Dataverse call is made, nothing changes."""
    pid = new_person(system, email="ana@fabrikam.example")
    before = snapshot(system)
    reads = flow.marketo.calls["GET /rest/v1/leads.json"]
    late = _with_clock(flow, lambda: 100.0 if flow.marketo.calls["GET /rest/v1/leads.json"] > reads else 0.0)

    with pytest.raises(TransientError, match="no time left"):
        late.run(pid)
    assert flow.dataverse.calls.total == 0
    assert snapshot(system) == before


def test_after_the_create_a_late_call_still_answers_created(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    """Time runs out once the lead exists: the answer is ``created``, and the sync writes the
    Marketo link fields when it reconciles the lead's create notice."""
    pid = new_person(system, email="ana@fabrikam.example")
    late = _with_clock(flow, lambda: 100.0 if flow.dataverse.calls["PATCH leads()"] else 0.0)
    system.dataverse_admin.pause_webhooks()  # the worker must not write the fields before we look
    try:
        outcome = late.run(pid)
        person = system.marketo_admin.person(pid)
    finally:
        system.dataverse_admin.pause_webhooks(False)

    assert outcome.status == "created"
    assert flow.marketo.calls["POST /rest/v1/leads.json"] == 0
    assert person["msftLeadId"] is None
    (entry,) = [e for e in system.deps.state.read_log(marketo_id=pid) if e.action == "created_in_dynamics"]
    assert "left to the sync" in entry.detail
    system.wait_idle()
    person = system.marketo_admin.person(pid)
    assert (person["msftLeadId"], person["msftType"]) == (outcome.dynamics_id, "Lead")


def test_a_refusal_that_is_not_the_persons_data_answers_502(system: LocalSystem) -> None:
    """A missing privilege is the integration's problem, not the person's: no Activity Log."""
    pid = new_person(system, email="ana@fabrikam.example")
    before = snapshot(system)
    system.dataverse_admin.fail(count=1, status=403)

    answer = post(system, {"marketoId": pid})

    assert answer.status == 502
    assert "dataverse" in answer.body["error"]
    assert snapshot(system) == before


def test_a_spent_marketo_share_answers_503_in_time_and_changes_nothing(system: LocalSystem) -> None:
    """A campaign calls the step faster than its reserved rate allows: the call waits for the
    rate only as long as its budget says, then answers 503 without sending, instead of an answer
    Marketo would no longer wait for."""
    deps = system.deps
    # A share of 2 calls per 20 s: one create (a read and a write-back) spends it.
    settings = deps.settings.model_copy(update={"marketo_flow_step_calls_per_20s": 2})
    budget = TimeBudget(rate_wait_seconds=0.5)
    flow = deps.build_flow_step(settings=settings, budget=budget)
    second = new_person(system, email="second@fabrikam.example")
    before = snapshot(system)
    # The campaign's previous call (a read and a write-back) spent the share just now; two reads
    # spend it without a create, so no worker runs meanwhile and the 20 s window is still full
    # when the call comes, however slow the machine.
    for _ in range(2):
        flow.marketo.get_leads_by_ids([second], ["id"])
    sent = flow.marketo.calls.total

    with pytest.raises(RateShareSpentError) as spent:
        flow.run(second)

    assert "share of the rate (2 calls per 20 s) is spent" in str(spent.value)
    assert spent.value.retry_after is not None
    assert spent.value.retry_after > budget.rate_wait_seconds
    assert flow.marketo.calls.total == sent  # nothing sent to Marketo
    assert snapshot(system) == before
