"""The harness itself: a lead created in Dynamics reaches Marketo, an edit in Marketo comes back."""

from __future__ import annotations

from mdsync.harness import LocalSystem


def test_a_lead_round_trips(system: LocalSystem) -> None:
    lead_id = system.dataverse_admin.create_as(
        "Jane Doe",
        "leads",
        {"firstname": "Ana", "lastname": "Lopez", "emailaddress1": "ana@fabrikam.example", "subject": "Web"},
    )
    system.wait_idle()
    (person,) = system.marketo_admin.persons()
    assert person["email"] == "ana@fabrikam.example"
    assert person["msftLeadId"] == lead_id
    system.marketo_admin.user_edit(person["id"], {"title": "CTO"})
    system.sync()
    row = system.dataverse_admin.row("lead", lead_id)
    assert row is not None
    assert row["jobtitle"] == "CTO"
    assert row["mdsync_marketoid"] == str(person["id"])
