"""The first-link rule, for all inputs: the rule a relink, a first link to an existing person and
the initial sync all apply (``shared.reconcile.decide_first_link`` / ``first_link_plan``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import Direction, EntityMapping, FieldMap, FieldType, Side
from shared.normalize import canonical, same, to_dynamics, to_marketo
from shared.notices import FieldValue
from shared.reconcile import Action, decide_first_link, first_link_plan, reconcile

values = st.one_of(st.none(), st.sampled_from(["Ana", "ana", " Bo ", "Cy", "Ana@X.example", "ana@x.EXAMPLE"]))
directions = st.sampled_from(list(Direction))
sides = st.sampled_from(list(Side))
types = st.sampled_from([FieldType.STRING, FieldType.EMAIL])


def _field(
    direction: Direction, kind: FieldType = FieldType.STRING, override: Side | None = None
) -> FieldMap:
    return FieldMap(marketo="title", dynamics="jobtitle", direction=direction, type=kind, first_link=override)


def _canonical(field: FieldMap, value: object, side: Side) -> FieldValue:
    return canonical(field, value, side)


@given(directions, types, sides, values, values)
def test_a_blank_never_overwrites_a_value(
    direction: Direction, kind: FieldType, fills: Side, m: str | None, d: str | None
) -> None:
    field = _field(direction, kind)
    decision = decide_first_link(
        field, _canonical(field, m, Side.MARKETO), _canonical(field, d, Side.DYNAMICS), fills
    )
    if decision.action in (Action.TO_MARKETO, Action.TO_DYNAMICS):
        assert decision.value is not None
    assert decision.action not in (Action.HELD, Action.TO_BOTH)
    assert not decision.collision  # a first link is not a collision: nothing changed since a sync


@given(types, sides, values, values)
def test_the_first_link_side_fills_the_other_where_both_hold_a_value(
    kind: FieldType, fills: Side, m: str | None, d: str | None
) -> None:
    field = _field(Direction.BOTH, kind)
    mc, dc = _canonical(field, m, Side.MARKETO), _canonical(field, d, Side.DYNAMICS)
    decision = decide_first_link(field, mc, dc, fills)
    if same(field, mc, dc):
        assert decision.action is Action.IN_SYNC
    elif mc is None or dc is None:
        assert decision.value == (dc if mc is None else mc)
        assert decision.action is (Action.TO_MARKETO if mc is None else Action.TO_DYNAMICS)
    else:
        assert decision.value == (dc if fills is Side.DYNAMICS else mc)
        assert decision.action is (Action.TO_MARKETO if fills is Side.DYNAMICS else Action.TO_DYNAMICS)


@given(directions, sides, sides, values, values)
def test_a_field_override_and_a_one_way_direction_decide_before_the_option(
    direction: Direction, fills: Side, override: Side, m: str | None, d: str | None
) -> None:
    field = _field(direction, override=override)
    mc, dc = _canonical(field, m, Side.MARKETO), _canonical(field, d, Side.DYNAMICS)
    decision = decide_first_link(field, mc, dc, fills)
    if mc is None or dc is None or mc == dc:
        return
    source = override
    if direction is Direction.TO_DYNAMICS:
        source = Side.MARKETO
    elif direction is Direction.TO_MARKETO:
        source = Side.DYNAMICS
    assert decision.value == (mc if source is Side.MARKETO else dc)


@given(directions, sides, values, values)
def test_after_a_first_link_the_pair_is_settled(
    direction: Direction, fills: Side, m: str | None, d: str | None
) -> None:
    """Applying the plan and reconciling again with the shadow it leaves writes nothing."""
    entity = EntityMapping(
        collision_winner=Side.MARKETO,
        fields=(FieldMap(marketo="email", dynamics="emailaddress1", type=FieldType.EMAIL), _field(direction)),
    )
    marketo: dict[str, Any] = {"email": "a@b.example", "title": m}
    dynamics: dict[str, Any] = {"emailaddress1": "a@b.example", "jobtitle": d}
    plan = first_link_plan(entity, marketo, dynamics, first_link=fills)
    for decision in plan.towards(Side.MARKETO):
        marketo[decision.field.marketo] = to_marketo(decision.field, decision.value)
    for decision in plan.towards(Side.DYNAMICS):
        dynamics[decision.field.dynamics] = to_dynamics(decision.field, decision.value)
    shadow = plan.shadow_after(wrote_marketo=True, wrote_dynamics=True)
    again = reconcile(entity, marketo, dynamics, shadow, first_link=fills)
    assert not again.towards(Side.MARKETO)
    assert not again.towards(Side.DYNAMICS)
    if direction is Direction.BOTH:
        field = entity.fields[1]
        assert same(
            field,
            _canonical(field, marketo["title"], Side.MARKETO),
            _canonical(field, dynamics["jobtitle"], Side.DYNAMICS),
        )


def test_emails_that_differ_only_in_case_are_the_same_and_keep_their_case() -> None:
    field = FieldMap(marketo="email", dynamics="emailaddress1", type=FieldType.EMAIL)
    decision = decide_first_link(field, "Ana@Fabrikam.example", "ana@fabrikam.example", Side.DYNAMICS)
    assert decision.action is Action.IN_SYNC
