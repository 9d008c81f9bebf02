"""No ping-pong: one user edit causes at most one write on each side, however its echoes come
back (webhooks of our own Dataverse writes, the poller reading our own Marketo writes, the
sweep re-reporting everything that changed)."""

from __future__ import annotations

import pytest

from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import create_linked, person, row, update_as_user

MARKETO_WRITES = ("POST /rest/v1/leads.json",)


def _writes(system: LocalSystem) -> tuple[int, int]:
    """(Marketo person writes, Dataverse row writes) sent by the app so far."""
    marketo = system.deps.marketo.calls.snapshot()
    dataverse = system.deps.dataverse.calls.snapshot()
    to_marketo = sum(marketo.get(endpoint, 0) for endpoint in MARKETO_WRITES)
    to_dynamics = sum(
        count
        for endpoint, count in dataverse.items()
        if endpoint.startswith(("PATCH leads", "PATCH contacts", "POST $batch"))
        or endpoint.endswith(("UpdateMultiple", "CreateMultiple", "UpsertMultiple"))
    )
    return to_marketo, to_dynamics


def _settle(system: LocalSystem) -> None:
    """Every echo path, twice over: webhooks, the poll, the sweep, the poll again."""
    system.sync()
    system.sweep()
    system.sync()


@pytest.mark.parametrize("entity", ["lead", "contact"])
def test_one_edit_writes_once_on_each_side(system: LocalSystem, entity: str) -> None:
    record_id, marketo_id = create_linked(system, entity, firstname="Ana")
    system.sweep()  # the sweep's starting point
    _settle(system)
    for round_ in range(2):
        before = _writes(system)
        update_as_user(system, entity, record_id, jobtitle=f"Title {round_}")
        _settle(system)
        after = _writes(system)
        assert (after[0] - before[0], after[1] - before[1]) == (1, 0)
        assert person(system, marketo_id)["title"] == f"Title {round_}"

        before = after
        system.marketo_admin.user_edit(marketo_id, {"city": f"City {round_}"})
        _settle(system)
        after = _writes(system)
        assert (after[0] - before[0], after[1] - before[1]) == (0, 1)
        assert row(system, entity, record_id)["address1_city"] == f"City {round_}"


def test_a_collision_writes_once_too(system: LocalSystem) -> None:
    record_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    system.sweep()
    _settle(system)
    before = _writes(system)
    system.dataverse_admin.pause_webhooks(True)
    update_as_user(system, "lead", record_id, jobtitle="Sales Lead")
    system.marketo_admin.user_edit(marketo_id, {"title": "Marketing Lead"})
    system.dataverse_admin.pause_webhooks(False)
    _settle(system)
    after = _writes(system)
    # Marketo wins on a lead: Dynamics is written once, Marketo not at all.
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1)
