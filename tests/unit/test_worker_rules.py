"""The worker's pure rules: collisions on one-way fields, echo detection, link fields, the retry
delay, the shadow a pair stores, and what the sync log may say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import RateLimitedError, ServiceUnavailableError
from shared.mapping import Direction, EntityMapping, FieldMap, FieldType, Side, load_mapping
from shared.normalize import UnmappedOptionError, canonical, to_marketo, unmapped_option
from shared.notices import Entity, FieldChange, FieldValue, Kind, Notice, Source
from shared.ports import Link, Shadow
from shared.reconcile import Action, reconcile
from shared.sync.batch import Pair, Reconciled, Unwritten
from shared.sync.grouping import is_echo
from shared.sync.journal import Journal
from shared.sync.planning import link_fields
from shared.sync.retry import RetryPolicy

MAPPING = load_mapping()
LINK = Link(1001, "lead", "0f7e0000-0000-4000-8000-000000000001")
texts = st.sampled_from([None, "Ana", "Bo", "Cy"])


def _entity(direction: Direction, winner: Side) -> EntityMapping:
    return EntityMapping(
        collision_winner=winner,
        fields=(
            FieldMap(marketo="email", dynamics="emailaddress1", type=FieldType.EMAIL),
            FieldMap(marketo="title", dynamics="jobtitle", direction=direction),
        ),
    )


# --- reconcile: a one-way field is won by the side it flows from ----------------------------------


@given(
    st.sampled_from(list(Direction)), st.sampled_from(list(Side)), texts, texts, st.one_of(st.none(), texts)
)
def test_a_collision_is_never_won_by_a_value_that_cannot_flow(
    direction: Direction, winner: Side, m: str | None, d: str | None, s: str | None
) -> None:
    entity = _entity(direction, winner)
    shadow = None if s is None else {"email": "a@b.example", "title": s}
    plan = reconcile(
        entity, {"email": "a@b.example", "title": m}, {"emailaddress1": "a@b.example", "jobtitle": d}, shadow
    )
    decision = plan.decisions[1]
    if not decision.collision:
        return
    assert decision.action is not Action.BLOCKED
    if direction is Direction.BOTH:
        assert decision.winner is winner
        assert "entity rule" in decision.reason
    else:
        source = Side.MARKETO if direction is Direction.TO_DYNAMICS else Side.DYNAMICS
        assert decision.winner is source
        assert ("one-way field" in decision.reason) == (source is not winner)


def test_a_one_way_field_edited_on_its_closed_side_stays_until_its_source_changes() -> None:
    entity = _entity(Direction.TO_DYNAMICS, Side.DYNAMICS)
    shadow = {"email": "a@b.example", "title": "Ana"}
    plan = reconcile(
        entity,
        {"email": "a@b.example", "title": "Ana"},
        {"emailaddress1": "a@b.example", "jobtitle": "Bo"},
        shadow,
    )
    assert plan.decisions[1].action is Action.BLOCKED
    assert plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)["title"] == "Ana"
    # Marketo changes it later: a collision that Marketo, the field's source, wins.
    plan = reconcile(
        entity,
        {"email": "a@b.example", "title": "Cy"},
        {"emailaddress1": "a@b.example", "jobtitle": "Bo"},
        shadow,
    )
    assert plan.decisions[1].action is Action.TO_DYNAMICS
    assert plan.decisions[1].value == "Cy"


# --- echoes -------------------------------------------------------------------------------------


def _notice(
    source: Source,
    changes: dict[str, object],
    *,
    own: bool = True,
    kind: Kind = Kind.UPDATED,
    snapshot: bool = False,
) -> Notice:
    return Notice(
        source=source,
        entity=Entity.PERSON if source is Source.MARKETO else Entity.LEAD,
        record_id="1001" if source is Source.MARKETO else LINK.dynamics_id,
        kind=kind,
        changes={k: FieldChange(new=v) for k, v in changes.items()},
        occurred_at=datetime.now(UTC),
        own_write=own,
        snapshot=snapshot,
    )


SHADOW = Shadow(1001, {"title": "CTO", "leadSource": "Web", "email": "ana@fabrikam.example"})


@pytest.mark.parametrize(
    ("notice", "echo"),
    [
        (_notice(Source.DYNAMICS, {"jobtitle": "CTO", "leadsourcecode": 8}), True),
        (_notice(Source.DYNAMICS, {"mdsync_marketoid": "1001"}), True),
        (_notice(Source.MARKETO, {"title": " CTO ", "email": "ANA@fabrikam.example"}), True),
        (_notice(Source.DYNAMICS, {"jobtitle": "CEO"}), False),  # a value the shadow lacks
        (_notice(Source.DYNAMICS, {"mdsync_marketoid": "1002"}), False),  # another person's id
        (_notice(Source.DYNAMICS, {"jobtitle": "CTO"}, own=False), False),  # someone else's write
        # A campaign's call for a change already synced; a poller's notice of a user's change
        # is always read (another field's later change may have lost its notice).
        (_notice(Source.MARKETO, {"title": "CTO"}, own=False, snapshot=True), True),
        (_notice(Source.MARKETO, {"title": "CEO"}, own=False, snapshot=True), False),
        (_notice(Source.MARKETO, {"title": "CTO"}, own=False), False),
        (_notice(Source.DYNAMICS, {"jobtitle": "CTO"}, kind=Kind.CREATED), False),
        (_notice(Source.DYNAMICS, {}), False),  # nothing reported: read it
        (_notice(Source.DYNAMICS, {"new_synctomkto": False}), False),  # not a mapped field
    ],
)
def test_an_echo_reports_only_what_the_shadow_already_holds(notice: Notice, echo: bool) -> None:
    assert is_echo(notice, LINK, SHADOW, MAPPING.lead, MAPPING.links.dynamics_marketo_id) is echo


def _change_notice(changes: dict[str, tuple[FieldValue, FieldValue]]) -> Notice:
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id="1001",
        kind=Kind.UPDATED,
        changes={k: FieldChange(old=old, new=new) for k, (old, new) in changes.items()},
        occurred_at=datetime.now(UTC),
        own_write=True,
    )


def test_an_echo_of_an_unconfirmed_write_must_show_the_value_mdsync_read() -> None:
    # mdsync read "CTO" in Marketo and wrote "CEO": not confirmed until its echo is seen.
    shadow = Shadow(1001, {"title": "CEO", "title@before": "CTO", "email": "ana@fabrikam.example"})
    column = MAPPING.links.dynamics_marketo_id
    mine = _change_notice({"title": ("CTO", "CEO")})
    assert is_echo(mine, LINK, shadow, MAPPING.lead, column)
    # The old value is not what mdsync read: someone changed it between mdsync's read and write.
    overwritten = _change_notice({"title": ("VP Sales", "CEO")})
    assert not is_echo(overwritten, LINK, shadow, MAPPING.lead, column)
    # Someone else's change of a field whose write is unconfirmed is read, whatever it reports.
    theirs = _notice(Source.MARKETO, {"title": "CEO"}, own=False, snapshot=True)
    assert not is_echo(theirs, LINK, shadow, MAPPING.lead, column)


# --- link fields ----------------------------------------------------------------------------------


def test_link_fields_show_the_link_and_only_what_differs() -> None:
    assert link_fields(MAPPING, LINK, {}) == {"msftType": "Lead", "msftLeadId": LINK.dynamics_id}
    current = {"msftType": "Lead", "msftLeadId": LINK.dynamics_id, "msftIsDeleted": False}
    assert link_fields(MAPPING, LINK, current) == {}
    contact = Link(1001, "contact", "0c0e0000-0000-4000-8000-000000000002")
    flagged = {**current, "msftIsDeleted": True}
    # Qualified: the lead id stays as history, the contact becomes the link.
    assert link_fields(MAPPING, contact, flagged) == {
        "msftType": "Contact",
        "msftContactId": contact.dynamics_id,
        "msftIsDeleted": False,
    }


# --- retry delay ----------------------------------------------------------------------------------


@given(st.integers(1, 40), st.floats(0, 100_000))
def test_retry_after_is_honoured_within_bounds(attempt: int, seconds: float) -> None:
    policy = RetryPolicy(max_attempts=8, base_delay_seconds=5, max_delay_seconds=900)
    delay = policy.delay_for(attempt, RateLimitedError("busy", service="dataverse", retry_after=seconds))
    assert delay == min(max(seconds, 1.0), 900)


@given(st.integers(1, 40))
def test_backoff_grows_and_stays_bounded(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=8, base_delay_seconds=5, max_delay_seconds=900)
    delay = policy.delay_for(attempt, ServiceUnavailableError("down", service="marketo"))
    expected = min(5 * 2.0 ** (attempt - 1), 900)
    assert 0.8 * expected <= delay <= 1.2 * expected


# --- the shadow a pair stores ---------------------------------------------------------------------


def test_a_shadow_advances_only_for_the_side_that_was_written() -> None:
    base: dict[str, FieldValue] = {"email": "a@b.example", "firstName": "Ana", "title": "CTO"}
    marketo = {"email": "a@b.example", "firstName": "Anna", "title": "CTO"}
    dynamics = {"emailaddress1": "a@b.example", "firstname": "Ana", "jobtitle": "CEO"}
    pair = Pair(LINK, shadow=Shadow(1001, base, etag="e1"))
    decision = Reconciled(plan=reconcile(MAPPING.lead, marketo, dynamics, base))
    stored = pair.shadow_to_store(decision, Unwritten(dynamics=frozenset({LINK.marketo_id})))
    assert stored is not None
    assert stored.etag == "e1"  # conditional on what was read
    assert stored.values["title"] == "CEO"  # written to Marketo
    assert stored.values["firstName"] == "Ana"  # the Dynamics write failed: not advanced


# --- the sync log ---------------------------------------------------------------------------------


def test_the_sync_log_never_holds_an_email_address() -> None:
    journal = Journal(1)
    journal.failed(
        LINK, "rejected", "0x80040265", "ana.lopez@fabrikam.example is not allowed", ["emailaddress1"]
    )
    (entry,) = journal.entries
    assert "ana.lopez@fabrikam.example" not in entry.detail
    assert "a***@fabrikam.example" in entry.detail
    (failure,) = journal.failures
    assert failure.message == "ana.lopez@fabrikam.example is not allowed"  # the person's own Activity Log
    assert journal.result.failure_reasons == {"rejected": 1}


# --- canonical option values ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e18, 10**18, -(10**18), 10**30, 999_999_999_999_999_999, 8, "8", "#77"])
def test_an_option_number_reads_back_equal_from_either_side(value: object) -> None:
    field = MAPPING.lead.by_marketo("leadSource")
    assert field is not None
    once = canonical(field, value, Side.MARKETO)
    if unmapped_option(field, once) is None:
        assert canonical(field, to_marketo(field, once), Side.MARKETO) == once
    else:  # an option the map does not name: reported, never sent to Marketo as a number
        with pytest.raises(UnmappedOptionError):
            to_marketo(field, once)
    assert canonical(field, once, Side.DYNAMICS) == once
