"""Issue 17, items 6, 7 and 9-13: option sets, emails, dates, money, Dynamics merges and text
lengths, end to end through the local system. Each test is named for its item and failed on the
code before the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdsync.cli import main
from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import (
    USER,
    create_linked,
    failure_activities,
    log_of,
    mapping_extended,
    person,
    person_of,
    row,
    update_as_user,
)

WEBINAR = 100000000  # a choice a customiser added to leadsourcecode


# --- items 6 and 7: option sets -------------------------------------------------------------------


def test_item_06_a_dynamics_option_the_map_does_not_name_is_reported_not_sent_as_a_number(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    system.dataverse_admin.set_column("lead", "leadsourcecode", options={WEBINAR: "Webinar"})
    assert main(["fields", "check"]) == 1  # both directions of the map are checked
    assert f"options [{WEBINAR}] of leadsourcecode have no Marketo value" in " ".join(
        capsys.readouterr().out.split()
    )
    lead_id, marketo_id = create_linked(system, "lead", leadsourcecode=8)
    update_as_user(system, "lead", lead_id, leadsourcecode=WEBINAR, jobtitle="CTO")
    system.sync()

    shown = person(system, marketo_id)
    assert shown["leadSource"] == "Web"  # never "100000000"
    assert shown["title"] == "CTO"  # the rest of the change is written
    (report,) = failure_activities(system, marketo_id)
    assert report["direction"] == "to_marketo"
    assert f"option {WEBINAR} has no Marketo value" in report["errorMessage"]


def test_item_07_a_marketo_label_the_map_does_not_name_blocks_only_its_column(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", leadsourcecode=8, jobtitle="Engineer")
    system.marketo_admin.user_edit(marketo_id, {"leadSource": "Billboard", "title": "CTO", "city": "Lyon"})
    system.sync()

    after = row(system, "lead", lead_id)
    assert (after["jobtitle"], after["address1_city"]) == ("CTO", "Lyon")  # written
    assert after["leadsourcecode"] == 8  # left as it was
    (report,) = failure_activities(system, marketo_id)
    assert report["fields"] == "leadsourcecode"
    assert "'Billboard' has no Dynamics value" in report["errorMessage"]


# --- item 9: emails ---------------------------------------------------------------------------------


def test_item_09_an_email_is_copied_as_typed_and_compared_without_case(system: LocalSystem) -> None:
    lead_id = system.dataverse_admin.create_as(
        USER, "leads", {"lastname": "Lopez", "emailaddress1": "Ana.Lopez@Fabrikam.example"}
    )
    system.sync()
    (created,) = system.marketo_admin.persons()
    assert created["email"] == "Ana.Lopez@Fabrikam.example"
    # A difference of case only is no difference: nothing is written back and forth.
    before = log_of(system, created["id"])
    system.marketo_admin.user_edit(created["id"], {"email": "ana.lopez@fabrikam.example"})
    system.sync()
    assert row(system, "lead", lead_id)["emailaddress1"] == "Ana.Lopez@Fabrikam.example"
    assert log_of(system, created["id"]) == before
    # A contact typed in another case links the same person.
    contact_id = system.dataverse_admin.create_as(
        USER, "contacts", {"lastname": "Lopez", "emailaddress1": "ANA.LOPEZ@FABRIKAM.EXAMPLE"}
    )
    system.sync()
    assert person_of(system, "contact", contact_id) != created["id"]  # the person is the lead's
    assert row(system, "contact", contact_id)["emailaddress1"] == "ANA.LOPEZ@FABRIKAM.EXAMPLE"


# --- item 10: dates ---------------------------------------------------------------------------------

CLOSE_DATE = {"marketo": "estimatedCloseDate", "dynamics": "estimatedclosedate", "type": "date"}
BIRTHDAY = {"marketo": "dateOfBirth", "dynamics": "birthdate", "type": "date"}


def test_item_10_a_user_local_date_reads_as_the_day_the_user_typed(
    system: LocalSystem, tmp_path: Path
) -> None:
    berlin = {"time_zone": "Europe/Berlin"}
    with mapping_extended(system, tmp_path, lead=[CLOSE_DATE], contact=[BIRTHDAY], options=berlin):
        # A Berlin user picks 15 June on the form: Dataverse stores local midnight, in UTC.
        lead_id, marketo_id = create_linked(system, "lead", estimatedclosedate="2026-06-14T22:00:00Z")
        assert person(system, marketo_id)["estimatedCloseDate"] == "2026-06-15"
        system.marketo_admin.user_edit(marketo_id, {"estimatedCloseDate": "2026-12-01"})
        system.sync()
        assert row(system, "lead", lead_id)["estimatedclosedate"] == "2026-11-30T23:00:00Z"  # CET
        # A date-only column is a calendar date both ways.
        contact_id, person_id = create_linked(system, "contact", birthdate="1990-05-17")
        assert person(system, person_id)["dateOfBirth"] == "1990-05-17"
        system.marketo_admin.user_edit(person_id, {"dateOfBirth": "1990-05-18"})
        system.sync()
        assert row(system, "contact", contact_id)["birthdate"] == "1990-05-18"
        # Nothing moves on the next round: the values read back equal.
        update_as_user(system, "lead", lead_id, jobtitle="CTO")
        system.sync()
        assert person(system, marketo_id)["estimatedCloseDate"] == "2026-12-01"


# --- item 11: money ---------------------------------------------------------------------------------

REVENUE = {"marketo": "annualRevenue", "dynamics": "revenue", "type": "money", "currency": "USD"}


def _currency(system: LocalSystem, code: str) -> str:
    (found,) = [r for r in system.dataverse_admin.rows("transactioncurrency") if r["isocurrencycode"] == code]
    return str(found["transactioncurrencyid"])


def test_item_11_money_moves_only_with_its_currency(system: LocalSystem, tmp_path: Path) -> None:
    with mapping_extended(system, tmp_path, lead=[REVENUE]):
        euro = f"/transactioncurrencies({_currency(system, 'EUR')})"
        in_euro, euro_person = create_linked(
            system, "lead", revenue=5000, **{"transactioncurrencyid@odata.bind": euro}
        )
        in_dollars, dollar_person = create_linked(system, "lead", revenue=7000)
        assert person(system, dollar_person)["annualRevenue"] == 7000
        assert person(system, euro_person).get("annualRevenue") is None  # not 5000 "dollars"
        (report,) = failure_activities(system, euro_person)
        assert "revenue is in EUR" in report["errorMessage"]
        # Marketo's figure (in USD) reaches a row without a currency with its currency.
        blank, blank_person = create_linked(system, "lead", firstname="No revenue")
        system.marketo_admin.user_edit(blank_person, {"annualRevenue": 1200})
        system.sync()
        written = row(system, "lead", blank)
        assert written["revenue"] == 1200
        assert written["_transactioncurrencyid_value"] == _currency(system, "USD")
        assert row(system, "lead", in_euro)["revenue"] == 5000
        assert row(system, "lead", in_dollars)["revenue"] == 7000


def test_item_11_fields_check_refuses_a_currency_column_mapped_as_a_bare_number(
    system: LocalSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = {"marketo": "annualRevenue", "dynamics": "revenue", "type": "number"}
    with mapping_extended(system, tmp_path, lead=[bare]):
        assert main(["fields", "check"]) == 1
    assert "revenue is a currency column: map it as type money" in " ".join(capsys.readouterr().out.split())


# --- item 12: Dynamics merges -----------------------------------------------------------------------


def test_item_12_a_dynamics_merge_merges_the_persons_in_marketo(system: LocalSystem) -> None:
    master_id, master = create_linked(
        system, "contact", firstname="Ana", emailaddress1="ana@fabrikam.example"
    )
    merged_id, _ = create_linked(
        system, "contact", telephone1="555 0100", emailaddress1="ana.lopez@fabrikam.example"
    )
    system.dataverse_admin.merge_as(USER, "contact", master_id, merged_id, {"jobtitle": "CFO"})
    system.sync()

    assert [p["id"] for p in system.marketo_admin.persons()] == [master]  # no duplicate survives
    assert person_of(system, "contact", master_id) == master
    assert system.deps.state.get_links_by_dynamics("contact", [merged_id]) == {}
    kept = person(system, master)
    assert (kept["title"], kept["phone"]) == ("CFO", "555 0100")  # the merged values, nothing lost
    assert row(system, "contact", master_id)["telephone1"] == "555 0100"
    assert row(system, "contact", merged_id)["statecode"] == 1  # deactivated, left alone


def test_item_12_a_record_merged_into_an_unsynced_one_takes_its_person_along(system: LocalSystem) -> None:
    (master_id,) = system.dataverse_admin.seed(
        "contact", [{"lastname": "Lopez", "emailaddress1": "bo@fabrikam.example", "jobtitle": "CEO"}]
    )
    merged_id, person_id = create_linked(
        system, "contact", firstname="Bo", emailaddress1="bo@fabrikam.example"
    )
    system.dataverse_admin.merge_as(USER, "contact", master_id, merged_id)
    system.sync()

    assert person_of(system, "contact", master_id) == person_id
    assert person(system, person_id)["msftContactId"] == master_id
    assert person(system, person_id)["title"] == "CEO"
    assert row(system, "contact", master_id)["firstname"] == "Bo"  # first link: blank filled


# --- item 13: lengths -------------------------------------------------------------------------------

SALES_NOTES = {"marketo": "salesNotes", "dynamics": "description"}


def test_item_13_text_longer_than_marketos_field_is_reported_not_cut(
    system: LocalSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with mapping_extended(system, tmp_path, lead=[SALES_NOTES]):
        assert main(["fields", "check"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "description holds 2000 characters, salesNotes 255" in out
        lead_id, marketo_id = create_linked(system, "lead", description="Short note")
        notes = "A long note. " * 30  # 390 characters
        update_as_user(system, "lead", lead_id, description=notes, jobtitle="CTO")
        system.sync()
        assert person(system, marketo_id)["salesNotes"] == "Short note"  # not cut to 255
        assert person(system, marketo_id)["title"] == "CTO"
        (report,) = failure_activities(system, marketo_id)
        assert "holds 255" in report["errorMessage"]
        # The next change must not bring anything cut back into Dynamics.
        system.marketo_admin.user_edit(marketo_id, {"city": "Lyon"})
        system.sync()
        assert row(system, "lead", lead_id)["description"] == notes
