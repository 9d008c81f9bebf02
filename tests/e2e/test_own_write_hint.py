"""Correctness never depends on the own-write mark: even when DYNAMICS_SYNC_USER_IDS wrongly
names a salesperson, that person's new lead and edits still sync."""

from __future__ import annotations

import pytest

from mdsync.harness import LocalSystem
from shared.bootstrap import reset_container
from simulators.dataverse.config import DEFAULT_HUMAN_USER_ID
from simulators.stack import SYNC_USER_ID


def test_a_wrong_sync_user_list_does_not_stop_the_sync(
    system: LocalSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNAMICS_SYNC_USER_IDS", f"{SYNC_USER_ID},{DEFAULT_HUMAN_USER_ID}")
    reset_container()
    try:
        lead_id = system.dataverse_admin.create_as(
            "Jane Doe", "leads", {"lastname": "Park", "emailaddress1": "park@x.example", "jobtitle": "CFO"}
        )
        system.wait_idle()
        person = system.until(
            lambda: [p for p in system.marketo_admin.persons() if p.get("msftLeadId") == lead_id]
        )[0]
        assert person["title"] == "CFO"
        system.dataverse_admin.update_as("Jane Doe", "leads", lead_id, {"jobtitle": "CEO"})
        system.wait_idle()
        system.until(lambda: system.marketo_admin.person(person["id"]).get("title") == "CEO")
    finally:
        monkeypatch.undo()
        reset_container()
