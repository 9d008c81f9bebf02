"""``options.auto_create_in_dynamics``: with it on, a new Marketo person gets a Dynamics lead
(created on the Marketo-id alternate key) or is linked to an open, unlinked record with the
same email. Configured the way an operator does it: MDSYNC_FIELD_MAPPING names a mapping file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import (
    USER,
    actions,
    failure_activities,
    mapping_edited,
    person,
    person_of,
    row,
)


@pytest.fixture
def auto_create(system: LocalSystem, tmp_path: Path) -> Iterator[LocalSystem]:
    edits = {"auto_create_in_dynamics: false": "auto_create_in_dynamics: true"}
    with mapping_edited(system, tmp_path, edits):
        assert system.deps.mapping.options.auto_create_in_dynamics
        yield system


def test_a_new_person_gets_a_lead(auto_create: LocalSystem) -> None:
    system = auto_create
    marketo_id = system.marketo_admin.user_create(
        {"email": "new@fabrikam.example", "firstName": "Nia", "lastName": "Novak", "leadSource": "Seminar"}
    )
    system.sync()
    (lead,) = system.dataverse_admin.rows("lead")
    assert (lead["firstname"], lead["lastname"], lead["leadsourcecode"]) == ("Nia", "Novak", 6)
    assert lead["mdsync_marketoid"] == str(marketo_id)
    assert person_of(system, "lead", lead["leadid"]) == marketo_id
    linked = person(system, marketo_id)
    assert (linked["msftType"], linked["msftLeadId"]) == ("Lead", lead["leadid"])
    assert "created_in_dynamics" in actions(system, marketo_id)
    # Then it syncs like any pair, and the flow step finds the lead there.
    system.marketo_admin.user_edit(marketo_id, {"title": "COO"})
    system.sync()
    assert row(system, "lead", lead["leadid"])["jobtitle"] == "COO"
    assert len(system.dataverse_admin.rows("lead")) == 1


def test_a_new_person_links_an_unlinked_record_with_its_email(auto_create: LocalSystem) -> None:
    system = auto_create
    (contact_id,) = system.dataverse_admin.seed(
        "contact", [{"lastname": "Berg", "emailaddress1": "bo@fabrikam.example", "jobtitle": "CEO"}]
    )
    marketo_id = system.marketo_admin.user_create({"email": "bo@fabrikam.example", "firstName": "Bo"})
    system.sync()
    assert system.dataverse_admin.rows("lead") == []
    assert person_of(system, "contact", contact_id) == marketo_id
    assert row(system, "contact", contact_id)["firstname"] == "Bo"
    assert person(system, marketo_id)["title"] == "CEO"


def test_a_person_whose_lead_would_be_refused_gets_the_reason(auto_create: LocalSystem) -> None:
    system = auto_create
    marketo_id = system.marketo_admin.user_create({"email": "long@fabrikam.example", "title": "T" * 150})
    system.sync()
    assert system.dataverse_admin.rows("lead") == []
    (activity,) = failure_activities(system, marketo_id)
    assert "jobtitle is 150 characters long" in activity["errorMessage"]


def test_a_person_whose_record_was_deleted_is_left_to_the_flow_step(auto_create: LocalSystem) -> None:
    system = auto_create
    lead_id = system.dataverse_admin.create_as(
        USER, "leads", {"lastname": "Gone", "emailaddress1": "gone@fabrikam.example"}
    )
    system.sync()
    marketo_id = person_of(system, "lead", lead_id)
    system.dataverse_admin.delete_as(USER, "leads", lead_id)
    system.sync()
    system.marketo_admin.user_edit(marketo_id, {"title": "Still here"})
    system.sync()
    assert system.dataverse_admin.rows("lead") == []


def test_new_persons_are_created_in_bulk_and_an_existing_lead_is_never_doubled(
    auto_create: LocalSystem,
) -> None:
    system = auto_create
    ids = [
        system.marketo_admin.user_create({"email": f"n{i}@fabrikam.example", "lastName": f"N{i}"})
        for i in range(3)
    ]
    # A lead already carries the second person's id (created by a run whose state write was lost).
    (existing,) = system.dataverse_admin.seed("lead", [{"lastname": "Kept", "mdsync_marketoid": str(ids[1])}])
    system.sync()
    leads = {r["mdsync_marketoid"]: r for r in system.dataverse_admin.rows("lead")}
    assert sorted(leads) == sorted(str(i) for i in ids)
    assert leads[str(ids[1])]["leadid"] == existing
    assert person_of(system, "lead", existing) == ids[1]
    assert [person_of(system, "lead", leads[str(i)]["leadid"]) for i in ids] == ids
    assert system.deps.dataverse.calls.snapshot().get("POST leads/CreateMultiple", 0) >= 1
