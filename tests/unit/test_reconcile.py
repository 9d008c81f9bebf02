"""The collision rules, for all inputs: no ping-pong, and the rule names the winner."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import Direction, EntityMapping, FieldMap, FieldType, Side, load_mapping
from shared.normalize import canonical, to_dynamics, to_marketo
from shared.reconcile import Action, FieldDecision, MarketoNews, Plan, reconcile

MAPPING = load_mapping()
values = st.sampled_from([None, "Ana", "ana ", "Bo", "Web", "Seminar", "x@y.example", True, False])


def _entity(direction: Direction, winner: Side) -> EntityMapping:
    return EntityMapping(
        collision_winner=winner,
        fields=(
            FieldMap(marketo="email", dynamics="emailaddress1", type=FieldType.EMAIL),
            FieldMap(marketo="firstName", dynamics="firstname", direction=direction),
        ),
    )


def _apply(
    entity: EntityMapping, plan: Plan, marketo: dict[str, Any], dynamics: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    marketo, dynamics = dict(marketo), dict(dynamics)
    for d in plan.writes(Action.TO_MARKETO):
        marketo[d.field.marketo] = to_marketo(d.field, d.value)
    for d in plan.writes(Action.TO_DYNAMICS):
        dynamics[d.field.dynamics] = to_dynamics(d.field, d.value)
    return marketo, dynamics


@given(
    st.sampled_from(list(Direction)),
    st.sampled_from(list(Side)),
    st.text(max_size=5),
    st.text(max_size=5),
    st.one_of(st.none(), st.text(max_size=5)),
)
def test_reconcile_converges_and_never_ping_pongs(
    direction: Direction, winner: Side, m: str, d: str, shadow: str | None
) -> None:
    entity = _entity(direction, winner)
    marketo = {"email": "a@b.example", "firstName": m}
    dynamics = {"emailaddress1": "a@b.example", "firstname": d}
    shadow_values = None if shadow is None else {"email": "a@b.example", "firstName": shadow}
    plan = reconcile(entity, marketo, dynamics, shadow_values)
    marketo2, dynamics2 = _apply(entity, plan, marketo, dynamics)
    new_shadow = plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)
    again = reconcile(entity, marketo2, dynamics2, new_shadow)
    # Whatever happened, the second pass writes nothing: no ping-pong.
    assert not again.writes(Action.TO_MARKETO)
    assert not again.writes(Action.TO_DYNAMICS)
    field = entity.fields[1]
    if direction is Direction.BOTH:
        assert canonical(field, marketo2["firstName"], Side.MARKETO) == canonical(
            field, dynamics2["firstname"], Side.DYNAMICS
        )


@given(values, values, values)
def test_a_collision_goes_to_the_side_the_rule_names(base: object, m: object, d: object) -> None:
    for entity_name, expected in (("lead", Side.MARKETO), ("contact", Side.DYNAMICS)):
        entity = MAPPING.entity(entity_name)
        field = entity.by_marketo("firstName")
        assert field is not None
        mc = canonical(field, m, Side.MARKETO)
        dc = canonical(field, d, Side.DYNAMICS)
        bc = canonical(field, base, Side.MARKETO)
        plan = reconcile(entity, {"firstName": m}, {"firstname": d}, {"firstName": bc})
        decision = next(x for x in plan.decisions if x.field.marketo == "firstName")
        if mc not in (bc, dc) and dc != bc:
            assert decision.collision
            assert decision.winner is expected
            assert decision.value == (mc if expected is Side.MARKETO else dc)
        else:
            assert not decision.collision


def test_one_sided_change_is_copied_and_blocked_direction_is_respected() -> None:
    entity = _entity(Direction.TO_DYNAMICS, Side.MARKETO)
    shadow = {"email": "a@b.example", "firstName": "Ana"}
    plan = reconcile(
        entity,
        {"email": "a@b.example", "firstName": "Ana"},
        {"emailaddress1": "a@b.example", "firstname": "Anna"},
        shadow,
    )
    decision = plan.decisions[1]
    assert decision.action is Action.BLOCKED
    assert plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)["firstName"] == "Ana"


def test_shadow_only_advances_for_what_was_written() -> None:
    entity = MAPPING.lead
    shadow = {"firstName": "Ana", "email": "a@b.example"}
    plan = reconcile(
        entity,
        {"firstName": "Anna", "email": "a@b.example"},
        {"firstname": "Ana", "emailaddress1": "a@b.example"},
        shadow,
    )
    assert [d.field.marketo for d in plan.writes(Action.TO_DYNAMICS)] == ["firstName"]
    assert plan.shadow_after(wrote_marketo=True, wrote_dynamics=False)["firstName"] == "Ana"
    assert plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)["firstName"] == "Anna"


def test_first_sync_fills_empty_side_without_collision() -> None:
    plan = reconcile(
        MAPPING.contact,
        {"email": "a@b.example", "title": None},
        {"emailaddress1": "a@b.example", "jobtitle": "CTO"},
        None,
    )
    title = next(d for d in plan.decisions if d.field.marketo == "title")
    assert title.action is Action.TO_MARKETO
    assert not title.collision
    assert title.value == "CTO"


# --- what Marketo really holds -----------------------------------------------------------------

texts = st.text(alphabet="abcXY ", min_size=1, max_size=6).map(str.strip).filter(bool)


def _sent(entity: EntityMapping, before: str, sent: str) -> dict:  # type: ignore[type-arg]
    """The shadow after mdsync wrote ``sent`` to Marketo, which held ``before``."""
    plan = reconcile(
        entity,
        {"email": "a@b.example", "firstName": before},
        {"emailaddress1": "a@b.example", "firstname": sent},
        {"email": "a@b.example", "firstName": before},
    )
    assert [d.value for d in plan.writes(Action.TO_MARKETO)] == [sent]
    return plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)


@given(st.sampled_from(list(Side)), texts, texts, st.booleans())
def test_a_value_marketo_did_not_take_is_reported_once_and_never_copied_back(
    winner: Side, before: str, sent: str, truncated: bool
) -> None:
    if canonical(FieldMap(marketo="x", dynamics="x"), before, Side.MARKETO) == sent or sent.startswith(
        before
    ):
        return
    entity = _entity(Direction.BOTH, winner)
    shadow = _sent(entity, before, sent)
    held = sent[: len(sent) - 1].strip() if truncated and len(sent) > 1 else before
    if not held or held == sent:
        return
    marketo = {"email": "a@b.example", "firstName": held}
    dynamics = {"emailaddress1": "a@b.example", "firstname": sent}
    # Before Marketo's activities since the write are read, it might be a user's edit: it waits.
    early = reconcile(entity, marketo, dynamics, shadow)
    assert [d.action for d in early.decisions if d.field.marketo == "firstName"] == [Action.HELD]
    assert not early.refusals
    assert not early.towards(Side.DYNAMICS)
    assert early.shadow_after(wrote_marketo=True, wrote_dynamics=True) == shadow
    # Read (an echo of the person, or the confirmation): not taken, unless a later change shows
    # Marketo had taken it (a user changed the field from the value sent).
    reverted = MarketoNews(others={"firstName": [(sent, held)]}, seen=True)
    touched = reconcile(entity, marketo, dynamics, shadow, news=reverted)
    assert [d.value for d in touched.towards(Side.DYNAMICS)] == [held]
    # A user's change from before the write, read only now, shows nothing of the kind.
    earlier = MarketoNews(others={"firstName": [("Zed", before)]}, seen=True)
    assert reconcile(entity, marketo, dynamics, shadow, news=earlier).refusals
    plan = reconcile(entity, marketo, dynamics, shadow, news=MarketoNews(seen=True))
    (decision,) = [d for d in plan.decisions if d.field.marketo == "firstName"]
    assert decision.action is Action.HELD
    assert decision.refused  # reported now
    assert not plan.towards(Side.DYNAMICS)  # the Dynamics value is never overwritten
    again = reconcile(entity, marketo, dynamics, plan.shadow_after(wrote_marketo=True, wrote_dynamics=True))
    (second,) = [d for d in again.decisions if d.field.marketo == "firstName"]
    assert second.action is Action.HELD
    assert not second.refused
    assert not again.towards(Side.MARKETO)
    assert not again.towards(Side.DYNAMICS)
    # A later change on either side syncs as usual.
    edited = reconcile(
        entity,
        {**marketo, "firstName": "Zed"},
        dynamics,
        again.shadow_after(wrote_marketo=True, wrote_dynamics=True),
    )
    assert [d.value for d in edited.writes(Action.TO_DYNAMICS) if d.field.marketo == "firstName"] == ["Zed"]


@given(texts, texts, texts)
def test_a_marketo_edit_overwritten_by_mdsyncs_write_follows_the_collision_rule(
    before: str, sent: str, typed: str
) -> None:
    if len({before, sent, typed}) < 3:
        return
    for winner in Side:
        entity = _entity(Direction.BOTH, winner)
        shadow = _sent(entity, before, sent)
        # Marketo shows mdsync's value; its echo says the field held ``typed`` just before.
        echoes = {"firstName": [(typed, sent)]}
        marketo = {"email": "a@b.example", "firstName": sent}
        dynamics = {"emailaddress1": "a@b.example", "firstname": sent}
        plan = reconcile(entity, marketo, dynamics, shadow, news=MarketoNews(echoes, seen=True))
        (decision,) = [d for d in plan.decisions if d.field.marketo == "firstName"]
        assert decision.collision
        assert decision.winner is winner
        if winner is Side.MARKETO:
            assert decision.action is Action.TO_BOTH
            assert decision.value == typed
        else:
            assert decision.action is Action.IN_SYNC
            assert decision.value == sent
        # Its own echo (old value = what mdsync read) confirms the write instead.
        mine = reconcile(
            entity, marketo, dynamics, shadow, news=MarketoNews({"firstName": [(before, sent)]}, seen=True)
        )
        assert not mine.collisions
        assert not mine.towards(Side.MARKETO)
        assert "firstName@before" not in mine.shadow_after(wrote_marketo=True, wrote_dynamics=True)


@given(st.sampled_from(list(Side)), texts, texts, texts, st.booleans(), st.booleans())
def test_an_unconfirmed_write_both_sides_moved_away_from_is_simply_in_sync(
    winner: Side, before: str, sent: str, other: str, reverted: bool, seen: bool
) -> None:
    # Marketo reverted (or refused) the value sent, or a user changed it, and Dynamics now holds
    # what Marketo holds: nothing is left to wait for, report or copy, and the memory is settled.
    field = FieldMap(marketo="x", dynamics="x")
    agreed = before if reverted else other
    if len({canonical(field, v, Side.MARKETO) for v in (before, sent, other)}) < 3:
        return
    entity = _entity(Direction.BOTH, winner)
    shadow = _sent(entity, before, sent)
    marketo = {"email": "a@b.example", "firstName": agreed}
    dynamics = {"emailaddress1": "a@b.example", "firstname": agreed}
    plan = reconcile(entity, marketo, dynamics, shadow, news=MarketoNews(seen=seen))
    (decision,) = [d for d in plan.decisions if d.field.marketo == "firstName"]
    assert decision.action is Action.IN_SYNC
    assert not plan.refusals
    assert not plan.collisions
    after = plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)
    assert after["firstName"] == canonical(entity.fields[1], agreed, Side.MARKETO)
    assert "firstName@before" not in after


def test_a_decision_seen_as_the_values_read_keeps_every_other_field() -> None:
    """``seen_as`` is ``dataclasses.replace`` with the values read: every other field of the
    class, present or added later, is kept."""
    decided = FieldDecision(MAPPING.lead.fields[0], Action.TO_DYNAMICS, "v")
    set_apart: dict[str, Any] = {f.name: object() for f in fields(FieldDecision)}
    set_apart["field"] = MAPPING.lead.fields[1]
    decided = replace(decided, **set_apart)
    read: dict[str, Any] = {"marketo": "m", "dynamics": "d", "before": "b"}
    assert decided.seen_as(**read) == replace(decided, **read)
