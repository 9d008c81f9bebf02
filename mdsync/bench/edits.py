"""Edits made the way users make them: in Dynamics as a licensed user (webhooks fire), in
Marketo on the Person Details page (activities the poller reads).

Dynamics bursts go through the simulator's admin API as "Jane Doe" with UpdateMultiple, a
thousand rows a request, so that a burst reaches Dataverse as fast as Dataverse emits it. Marketo
edits call the simulator's in-process state, which is what its admin endpoint
``PATCH /admin/ui/persons/{id}`` runs: ten thousand HTTP round trips would measure the bench, not
the sync. Neither path is rate-limited: both are users, not API clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mdsync.harness import LocalSystem
from shared.dataverse.odata import ENTITY_SETS
from simulators.dataverse.admin import AdminError

USER = "Jane Doe"
CHUNK = 1_000


def edit_in_dynamics(system: LocalSystem, entity: str, edits: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """``edits``: (row id, changed columns); sent as UpdateMultiple, CHUNK rows a request."""
    entity_set = ENTITY_SETS[entity]
    for start in range(0, len(edits), CHUNK):
        targets = [
            {"@odata.type": f"Microsoft.Dynamics.CRM.{entity}", f"{entity}id": row_id, **changes}
            for row_id, changes in edits[start : start + CHUNK]
        ]
        response = system.dataverse_admin.as_user(
            USER, "POST", f"{entity_set}/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": targets}
        )
        if response.status_code != 204:
            raise AdminError(response.status_code, response.text)


def edit_one_in_dynamics(system: LocalSystem, entity: str, row_id: str, changes: dict[str, Any]) -> None:
    system.dataverse_admin.update_as(USER, ENTITY_SETS[entity], row_id, changes)


def edit_in_marketo(system: LocalSystem, edits: Sequence[tuple[int, dict[str, Any]]]) -> None:
    state = system.stack.marketo.state
    for marketo_id, changes in edits:
        state.user_edit(marketo_id, changes)
