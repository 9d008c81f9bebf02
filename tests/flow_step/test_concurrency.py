"""Concurrent flow steps for one person create exactly one lead, whatever the state store says.

To make the race certain rather than likely, the in-process tests hold each call between its
lookup and its create (the column-metadata callable the flow step consults right before the
create is the seam) until every call got there: all of them found nothing, all of them send the
create, and the count of create requests proves that Dataverse's key guard decided.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mdsync.harness import LocalSystem
from shared.adapters.sqlite_state import SqliteStateStore
from shared.flow_step import FlowStepOutcome, SyncPersonToMicrosoft
from shared.ports import Link

from .conftest import leads, leads_of, linked, new_person

LOOKUP_DELAY = 0.3
WAIT = 10.0  # seconds a held call waits for the others before the test fails


def _hold_before_create(flow: SyncPersonToMicrosoft, hold: Callable[[], object]) -> SyncPersonToMicrosoft:
    """The same flow step (same clients), running ``hold`` after its lookup, before its create."""

    def columns(entity: str) -> Any:
        hold()
        return flow.columns(entity)

    return SyncPersonToMicrosoft(
        flow.marketo, flow.dataverse, flow.state, flow.mapping, flow.activity_log, columns=columns
    )


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together."""
    barrier = threading.Barrier(len(calls))

    def run(target: Callable[[], Any]) -> Any:
        barrier.wait()
        return target()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_concurrent_calls_create_exactly_one_lead(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    both_looked = threading.Barrier(2, timeout=WAIT)
    held = _hold_before_create(flow, both_looked.wait)

    outcomes: list[FlowStepOutcome] = _at_once([lambda: held.run(pid), lambda: held.run(pid)])

    assert sorted(o.status for o in outcomes) == ["created", "exists"]
    assert outcomes[0].dynamics_id == outcomes[1].dynamics_id
    assert [r["leadid"] for r in leads(system)] == [outcomes[0].dynamics_id]
    assert flow.dataverse.calls["PATCH leads()"] == 2  # both tried; Dataverse refused the second
    assert linked(system, pid) == ("lead", outcomes[0].dynamics_id)
    assert system.marketo_admin.person(pid)["msftLeadId"] == outcomes[0].dynamics_id


def test_webhooks_fired_at_once_through_the_host_create_one_lead(system: LocalSystem) -> None:
    pid = new_person(system, email="ana@fabrikam.example")
    calls = 4
    system.dataverse_admin.slow(LOOKUP_DELAY, count=calls, path="$batch")

    fired = _at_once([lambda: system.fire_flow_step(pid)] * calls)

    assert [f["status"] for f in fired] == [200] * calls
    statuses = sorted(f["body"].split('"status":"')[1].split('"')[0] for f in fired)
    assert statuses == ["created"] + ["exists"] * (calls - 1)
    (lead,) = leads(system)
    assert lead["mdsync_marketoid"] == str(pid)
    system.wait_idle()
    assert len(leads(system)) == 1
    assert len(system.marketo_admin.persons()) == 1
    assert system.marketo_admin.person(pid)["mdsyncFlowStepDynamicsId"] == lead["leadid"]


def test_a_lead_with_the_persons_key_but_no_state_link_is_adopted(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    """The state-store write of an earlier call was lost: the lead exists, the link does not."""
    pid = new_person(system, email="ana@fabrikam.example")
    (lead_id,) = system.dataverse_admin.seed(
        "lead",
        [{"lastname": "Lopez", "emailaddress1": "other@fabrikam.example", "mdsync_marketoid": str(pid)}],
    )
    assert linked(system, pid) is None

    outcomes = _at_once([lambda: flow.run(pid), lambda: flow.run(pid)])

    assert [(o.status, o.dynamics_id) for o in outcomes] == [("exists", lead_id)] * 2
    assert [r["leadid"] for r in leads(system)] == [lead_id]
    assert flow.dataverse.calls["PATCH leads()"] == 0  # nothing written to Dynamics
    assert linked(system, pid) == ("lead", lead_id)
    assert system.marketo_admin.person(pid)["msftLeadId"] == lead_id


def test_a_create_refused_by_the_key_is_answered_with_the_existing_lead(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    """The lead appears between the lookup and the create (another instance, its state write
    lost): the create is refused, and the call answers with that lead and restores the link."""
    pid = new_person(system, email="ana@fabrikam.example")
    seeded: list[str] = []

    def create_meanwhile() -> None:
        seeded.extend(
            system.dataverse_admin.seed("lead", [{"lastname": "Lopez", "mdsync_marketoid": str(pid)}])
        )

    outcome = _hold_before_create(flow, create_meanwhile).run(pid)

    (lead_id,) = seeded
    assert (outcome.status, outcome.dynamics_id) == ("exists", lead_id)
    assert flow.dataverse.calls["PATCH leads()"] == 1  # the create was tried and refused
    assert [r["leadid"] for r in leads(system)] == [lead_id]
    assert linked(system, pid) == ("lead", lead_id)
    assert system.marketo_admin.person(pid)["msftLeadId"] == lead_id


class _HeldState(SqliteStateStore):
    """The real SQLite state store, holding each caller where the flow step checks whether the
    records it found are linked: right after its lookup, right before it links one."""

    def __init__(self, path: Path, hold: Callable[[], object]) -> None:
        super().__init__(path)
        self._hold = hold

    def get_links_by_dynamics(
        self, entity: str, dynamics_ids: Iterable[str], *, hints: Mapping[str, int] | None = None
    ) -> dict[str, Link]:
        self._hold()
        return super().get_links_by_dynamics(entity, dynamics_ids, hints=hints)


def test_two_persons_sharing_an_email_cannot_both_take_one_record(
    system: LocalSystem, flow: SyncPersonToMicrosoft
) -> None:
    (contact_id,) = system.dataverse_admin.seed(
        "contact", [{"lastname": "Lopez", "emailaddress1": "ana@fabrikam.example"}]
    )
    first = new_person(system, email="ana@fabrikam.example")
    second = system.marketo_admin.user_create({"email": "ana@fabrikam.example", "lastName": "Lopez"})
    both_looked = threading.Barrier(2, timeout=WAIT)
    state = _HeldState(system.queue_path.with_suffix(".state.sqlite3"), both_looked.wait)
    held = SyncPersonToMicrosoft(
        flow.marketo, flow.dataverse, state, flow.mapping, flow.activity_log, columns=flow.columns
    )
    try:
        outcomes = _at_once([lambda: held.run(first), lambda: held.run(second)])
    finally:
        state.close()

    assert sorted((o.status, o.entity) for o in outcomes) == [("created", "lead"), ("exists", "contact")]
    # Usually both try to link and the ETag refuses one; under load the second may already see
    # the first's link. Either way exactly one person gets the contact.
    assert flow.dataverse.calls["PATCH contacts()"] in (1, 2)
    winner, loser = (first, second) if outcomes[0].entity == "contact" else (second, first)
    contact = system.dataverse_admin.row("contact", contact_id)
    assert contact is not None
    assert contact["mdsync_marketoid"] == str(winner)
    assert linked(system, winner) == ("contact", contact_id)
    (lead,) = leads_of(system, loser)
    assert linked(system, loser) == ("lead", lead["leadid"])
