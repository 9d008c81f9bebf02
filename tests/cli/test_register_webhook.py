"""`mdsync dynamics register-webhook` registers the steps the mapping needs, and they fire."""

from __future__ import annotations

import pytest

from mdsync.cli import main
from mdsync.harness import HOST_KEY, LocalSystem


def test_register_webhook_replaces_the_registration(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    assert system.host is not None
    url = system.host.function_url("dynamics_webhook")
    assert (
        main(
            [
                "dynamics",
                "register-webhook",
                "--url",
                url,
                "--function-key",
                HOST_KEY,
                "--name",
                "mdsync-local",
            ]
        )
        == 0
    )
    assert "8 steps" in capsys.readouterr().out  # Create, Update, Delete and Merge on lead and contact
    lead_id = system.dataverse_admin.create_as(
        "Jane Doe", "leads", {"lastname": "Ng", "emailaddress1": "ng@x.example"}
    )
    system.wait_idle()
    person = system.until(
        lambda: [p for p in system.marketo_admin.persons() if p.get("msftLeadId") == lead_id]
    )
    assert person[0]["email"] == "ng@x.example"
    # Replaced, not duplicated: one Create delivery for the one create.
    creates = [
        j for j in system.dataverse_admin.jobs() if lead_id in str(j) and j.get("messagename") == "Create"
    ]
    assert len(creates) == 1
