"""API calls per synced change, at 1,000 changed persons per direction, through the whole product.

What is counted: every call the app's own clients sent (poller, sweep, worker, echoes of our own
writes included) from the changes until the system is idle again, divided by the number of
changed persons. The bar is 0.05 calls per change per system.

How the changes arrive: Marketo edits through the poller (pages of 300 activities); Dynamics
edits through the sweep. The local host hands the worker whatever is queued at once, and it does
not implement the Service Bus trigger's ``minMessageBatchSize``/``maxBatchWaitTime`` batching
(host.json: 50 messages / 2 s), so 1,000 webhooks delivered one by one would reach the worker in
batches of a handful and measure the local pump, not the sync.
"""

from __future__ import annotations

import pytest

from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import USER

PERSONS = 1000
BAR = 0.05


def _calls(system: LocalSystem) -> tuple[int, int]:
    return system.deps.marketo.calls.total, system.deps.dataverse.calls.total


def _measure(
    system: LocalSystem, before: tuple[int, int], label: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marketo, dataverse = (after - start for after, start in zip(_calls(system), before, strict=True))
    with capsys.disabled():
        print(
            f"\n{label}: {PERSONS} persons, Marketo {marketo} calls ({marketo / PERSONS:.3f} per change), "
            f"Dataverse {dataverse} calls ({dataverse / PERSONS:.3f} per change)"
        )
    assert marketo / PERSONS <= BAR
    assert dataverse / PERSONS <= BAR


def _bulk(system: LocalSystem, message: str, targets: list[dict[str, object]]) -> None:
    """One CreateMultiple/UpdateMultiple made by a Dynamics user, its webhooks lost."""
    system.dataverse_admin.drop_webhooks(len(targets))
    typed = [{"@odata.type": "Microsoft.Dynamics.CRM.lead", **t} for t in targets]
    response = system.dataverse_admin.as_user(
        USER, "POST", f"leads/Microsoft.Dynamics.CRM.{message}", {"Targets": typed}
    )
    assert response.status_code in (200, 204), response.text
    system.wait_idle()
    system.dataverse_admin.clear_faults()


@pytest.mark.slow
def test_api_calls_per_change_at_a_thousand_persons(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    system.sweep()  # the sweep's starting point
    _bulk(
        system,
        "CreateMultiple",
        [
            {"lastname": f"Lopez {i}", "firstname": "Ana", "emailaddress1": f"p{i}@fabrikam.example"}
            for i in range(PERSONS)
        ],
    )
    before = _calls(system)
    system.sweep()
    system.sync(timeout=120)
    _measure(system, before, "new Dynamics leads -> Marketo persons", capsys)
    persons = system.marketo_admin.persons()
    assert len(persons) == PERSONS
    assert all(p["msftLeadId"] for p in persons)

    leads = system.dataverse_admin.rows("lead")
    before = _calls(system)
    _bulk(system, "UpdateMultiple", [{"leadid": r["leadid"], "jobtitle": "CTO"} for r in leads])
    system.sweep()
    system.sync(timeout=120)
    _measure(system, before, "Dynamics -> Marketo", capsys)
    assert {p["title"] for p in system.marketo_admin.persons()} == {"CTO"}

    before = _calls(system)
    for person in persons:
        system.marketo_admin.user_edit(person["id"], {"city": "Lisbon"})
    system.sync(timeout=120)
    _measure(system, before, "Marketo -> Dynamics", capsys)
    assert {r["address1_city"] for r in system.dataverse_admin.rows("lead")} == {"Lisbon"}
