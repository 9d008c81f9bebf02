"""Matching decisions (pure): ambiguities are reported, never guessed; a rule the admin chose
picks one; emails match as the sync normalises them; the sync filter leaves records out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.backfill.job import Ambiguity
from shared.backfill.matching import (
    PersonAtEmail,
    Rec,
    claim_of,
    decide_email,
    decide_person,
    email_of,
    left_out,
)
from shared.mapping import load_mapping

MAPPING = load_mapping()


def rec(key: str, created: str = "2024-01-01", origin: str | None = None) -> Rec:
    return Rec(key, key.split(":", 1)[0], created, origin)


def free(*ids: int) -> list[PersonAtEmail]:
    return [PersonAtEmail(i, "free") for i in ids]


# --- by email ----------------------------------------------------------------------------------


def test_one_record_and_one_person_pair_by_email() -> None:
    decision = decide_email("ana@x.example", [rec("lead:a")], free(7), Ambiguity.REPORT)
    assert decision.pairs == [("lead:a", 7, "email")]
    assert decision.issues == []
    assert decision.creates == []


def test_a_record_with_no_person_gets_one_created() -> None:
    decision = decide_email("ana@x.example", [rec("lead:a")], [], Ambiguity.REPORT)
    assert decision.creates == ["lead:a"]
    assert decision.pairs == []


def test_persons_no_record_wants_are_marketo_only_and_stay_so() -> None:
    decision = decide_email("ana@x.example", [], free(7, 9), Ambiguity.REPORT)
    assert decision.marketo_only == [7, 9]
    assert decision.pairs == []
    assert decision.creates == []


def test_two_records_with_one_email_are_reported_not_guessed() -> None:
    decision = decide_email("ana@x.example", [rec("lead:a"), rec("contact:b")], free(7), Ambiguity.REPORT)
    assert decision.pairs == []
    assert decision.creates == []
    [issue] = decision.issues
    assert issue.kind == "ambiguous"
    assert set(issue.records) == {"lead:a", "contact:b"}
    assert issue.chosen == ""
    assert "ana@" not in issue.why  # the email is masked
    assert "a***@x.example" in issue.why


def test_prefer_contact_links_the_contact_and_reports_the_lead() -> None:
    decision = decide_email(
        "ana@x.example", [rec("lead:a"), rec("contact:b")], free(7), Ambiguity.PREFER_CONTACT
    )
    assert decision.pairs == [("contact:b", 7, "rule")]
    [issue] = decision.issues
    assert issue.chosen == "contact:b"


def test_prefer_lead_and_the_age_rules_choose_by_what_they_say() -> None:
    records = [rec("contact:b", "2020-01-01"), rec("lead:a", "2022-01-01"), rec("lead:c", "2021-01-01")]
    assert decide_email("e", records, free(7), Ambiguity.PREFER_LEAD).pairs == [("lead:c", 7, "rule")]
    assert decide_email("e", records, free(7), Ambiguity.OLDEST).pairs == [("contact:b", 7, "rule")]
    assert decide_email("e", records, free(7), Ambiguity.NEWEST).pairs == [("lead:a", 7, "rule")]


def test_two_persons_with_one_email_are_reported_or_the_rule_picks_by_id() -> None:
    reported = decide_email("e", [rec("lead:a")], free(9, 7), Ambiguity.REPORT)
    assert reported.pairs == []
    assert reported.creates == []
    assert reported.issues[0].persons == (7, 9)
    assert decide_email("e", [rec("lead:a")], free(9, 7), Ambiguity.OLDEST).pairs == [("lead:a", 7, "rule")]
    assert decide_email("e", [rec("lead:a")], free(9, 7), Ambiguity.NEWEST).pairs == [("lead:a", 9, "rule")]


def test_a_record_whose_email_belongs_to_a_person_linked_elsewhere_is_reported() -> None:
    taken = [PersonAtEmail(7, "taken", "contact:c")]
    decision = decide_email("e", [rec("lead:a")], taken, Ambiguity.PREFER_LEAD)
    assert decision.pairs == []
    assert decision.creates == []
    assert decision.issues[0].kind == "taken"
    assert "contact:c" in decision.issues[0].why


def test_the_contact_of_a_qualified_linked_lead_follows_it_quietly() -> None:
    taken = [PersonAtEmail(7, "taken", "lead:l1")]
    decision = decide_email("e", [rec("contact:c", origin="l1")], taken, Ambiguity.REPORT)
    assert decision.follows_lead == ["contact:c"]
    assert decision.issues == []
    assert decision.pairs == []
    assert decision.creates == []


def test_a_contested_person_is_not_matched_by_email_either() -> None:
    decision = decide_email("e", [rec("lead:a")], [PersonAtEmail(7, "contested")], Ambiguity.OLDEST)
    assert decision.pairs == []
    assert decision.creates == []
    assert decision.issues[0].kind == "ambiguous"


# --- by the id stored on the record, and by link ------------------------------------------------


def test_a_linked_pair_stays_paired() -> None:
    decision = decide_person(7, True, "lead:a", [(rec("lead:a"), "link")], Ambiguity.REPORT)
    assert decision.pair == ("lead:a", "link")


def test_one_record_naming_a_person_by_stored_id_pairs_with_it() -> None:
    decision = decide_person(7, True, None, [(rec("lead:a"), "claim")], Ambiguity.REPORT)
    assert decision.pair == ("lead:a", "stored id")


def test_two_records_naming_one_person_are_ambiguous_and_the_person_is_held_back() -> None:
    named = [(rec("lead:a"), "claim"), (rec("contact:b"), "claim")]
    decision = decide_person(7, True, None, named, Ambiguity.REPORT)
    assert decision.pair is None
    assert decision.person == "contested"
    assert decision.issues[0].records == ("lead:a", "contact:b")
    chosen = decide_person(7, True, None, named, Ambiguity.PREFER_CONTACT)
    assert chosen.pair == ("contact:b", "rule")


def test_a_stored_id_of_a_person_that_is_gone_sends_the_record_to_email_matching() -> None:
    decision = decide_person(7, False, None, [(rec("lead:a"), "claim")], Ambiguity.REPORT)
    assert decision.pair is None
    assert decision.to_email == ["lead:a"]


def test_a_stored_id_naming_a_person_linked_elsewhere_goes_to_email_matching() -> None:
    named = [(rec("lead:a"), "link"), (rec("lead:b"), "claim")]
    decision = decide_person(7, True, "lead:a", named, Ambiguity.REPORT)
    assert decision.pair == ("lead:a", "link")
    assert decision.to_email == ["lead:b"]


def test_a_linked_side_that_is_gone_is_handed_to_the_live_sync() -> None:
    record_gone = decide_person(7, True, "lead:a", [], Ambiguity.REPORT)
    assert record_gone.handover
    assert record_gone.pair is None
    assert record_gone.person == "taken"
    person_gone = decide_person(7, False, "lead:a", [(rec("lead:a"), "link")], Ambiguity.REPORT)
    assert person_gone.handover
    assert person_gone.pair is None


def test_a_linked_record_the_backfill_leaves_alone_keeps_its_person_taken() -> None:
    decision = decide_person(7, True, "lead:a", [(rec("lead:a"), "left")], Ambiguity.REPORT)
    assert decision.pair is None
    assert not decision.handover
    assert decision.person == "taken"


# --- what a record is ----------------------------------------------------------------------------


def test_emails_match_without_case_or_surrounding_space() -> None:
    lead = {"emailaddress1": "  Ana.Lopez@Fabrikam.Example "}
    assert email_of(MAPPING, "lead", lead) == "ana.lopez@fabrikam.example"
    assert email_of(MAPPING, "lead", {"emailaddress1": ""}) is None


def test_the_sync_filter_and_the_live_sync_rules_leave_records_out() -> None:
    assert left_out(MAPPING, "lead", {"new_synctomkto": False}) == "excluded"
    assert left_out(MAPPING, "lead", {"new_synctomkto": None}) is None  # missing or null: synced
    assert left_out(MAPPING, "lead", {"statecode": 1}) == "qualified"
    assert left_out(MAPPING, "contact", {"statecode": 1}) is None
    assert left_out(MAPPING, "lead", {"_masterid_value": "x"}) == "merged"


def test_a_stored_marketo_id_counts_only_when_it_is_one() -> None:
    assert claim_of(MAPPING, {"mdsync_marketoid": "1234"}) == 1234
    assert claim_of(MAPPING, {"mdsync_marketoid": " 1234 "}) == 1234
    assert claim_of(MAPPING, {"mdsync_marketoid": "12a"}) is None
    assert claim_of(MAPPING, {"mdsync_marketoid": "0"}) is None
    assert claim_of(MAPPING, {}) is None


# --- properties ----------------------------------------------------------------------------------

entities = st.sampled_from(["lead", "contact"])
records = st.lists(
    st.builds(
        lambda e, i, d: Rec(f"{e}:{i}", e, f"2024-01-{d:02d}"),
        entities,
        st.integers(0, 50),
        st.integers(1, 28),
    ),
    max_size=5,
    unique_by=lambda r: r.key,
)
persons = st.lists(
    st.builds(PersonAtEmail, st.integers(1, 100), st.sampled_from(["free", "taken", "contested"])),
    max_size=4,
    unique_by=lambda p: p.id,
)
rules = st.sampled_from(list(Ambiguity))


@given(records, persons, rules)
def test_a_group_never_links_twice_and_reports_whatever_it_leaves(
    recs: list[Rec], people: list[PersonAtEmail], rule: Ambiguity
) -> None:
    decision = decide_email("e@x.example", recs, people, rule)
    linked = [key for key, _, _ in decision.pairs]
    persons_linked = [m for _, m, _ in decision.pairs]
    # One record and one person at most, never both linked and created.
    assert len(decision.pairs) <= 1
    assert len(set(persons_linked)) == len(persons_linked)
    assert not set(linked) & set(decision.creates)
    # Only a free person is linked.
    free_ids = {p.id for p in people if p.state == "free"}
    assert set(persons_linked) <= free_ids
    # Every record is linked, created, reported or follows its lead: none is forgotten.
    accounted = set(linked) | set(decision.creates) | set(decision.follows_lead)
    accounted |= {key for issue in decision.issues for key in issue.records}
    assert accounted == {r.key for r in recs}


@given(records, persons)
def test_report_never_guesses(recs: list[Rec], people: list[PersonAtEmail]) -> None:
    decision = decide_email("e@x.example", recs, people, Ambiguity.REPORT)
    free_count = sum(p.state == "free" for p in people)
    if len(recs) > 1 or free_count > 1:
        assert decision.pairs == []
        assert decision.creates == []
    assert all(issue.chosen == "" for issue in decision.issues)
