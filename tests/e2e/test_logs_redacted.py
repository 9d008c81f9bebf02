"""Logs carry notice ids and person keys, never secrets or full email addresses."""

from __future__ import annotations

import logging

import pytest

from mdsync.harness import LocalSystem
from shared.bootstrap import reset_container
from simulators.stack import DATAVERSE_CLIENT_SECRET, FLOW_STEP_SECRET, MARKETO_CLIENT_SECRET, WEBHOOK_SECRET

EMAIL = "ana.lopez@fabrikam.example"


def test_a_full_sync_logs_ids_but_no_secret_or_email(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reset_container()  # fresh tokens: the identity calls are logged too
    lead_id = system.dataverse_admin.create_as(
        "Jane Doe", "leads", {"lastname": "Lopez", "emailaddress1": EMAIL}
    )
    system.wait_idle()
    person = system.until(
        lambda: [p for p in system.marketo_admin.persons() if p.get("msftLeadId") == lead_id]
    )[0]
    system.marketo_admin.user_edit(person["id"], {"title": "CTO"})
    system.sync()
    system.dataverse_admin.add_plugin(
        "no-cto", "lead", "regex", column="jobtitle", pattern="^(?!CEO).*$", message=f"{EMAIL} may not be CEO"
    )
    system.marketo_admin.user_edit(person["id"], {"title": "CEO"})
    system.sync()
    system.fire_flow_step(person["id"])
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert f"marketo:{person['id']}" in text
    assert any(getattr(r, "notice_ids", None) for r in caplog.records)
    for secret in (EMAIL, DATAVERSE_CLIENT_SECRET, MARKETO_CLIENT_SECRET, WEBHOOK_SECRET, FLOW_STEP_SECRET):
        assert secret not in text
    assert "a***@fabrikam.example" in text
