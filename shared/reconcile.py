"""Where collisions are decided: the per-field reconcile rules. Pure: no I/O.

For each mapped field, compare Marketo's current value, Dynamics' current value and the shadow
(the last value synced), all canonical:

* equal on both sides -> nothing to write; the shadow records the value;
* changed on one side only -> copy it to the other side, if the field's direction allows;
* changed on both sides to different values -> a collision, won by the field's rule
  (Marketo for leads, Dynamics for contacts, unless configured otherwise). A one-way field is
  won by the side it flows from: the other side's value could never reach it, and a rule that
  names that side would leave the field diverged for good;
* no shadow yet (first sync of the pair) and the values differ -> decided like a collision,
  except that an empty side simply receives the other side's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shared.mapping import EntityMapping, FieldMap, Side
from shared.normalize import canonical
from shared.notices import FieldValue

_MISSING = object()


class Action(StrEnum):
    IN_SYNC = "in_sync"
    TO_DYNAMICS = "to_dynamics"
    TO_MARKETO = "to_marketo"
    BLOCKED = "blocked"  # the change's direction is not allowed for this field


@dataclass(frozen=True)
class FieldDecision:
    field: FieldMap
    action: Action
    value: FieldValue
    collision: bool = False
    winner: Side | None = None
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    """What to write where for one linked pair, and the shadow once the writes succeed."""

    decisions: tuple[FieldDecision, ...]
    shadow_base: dict[str, FieldValue] = field(default_factory=dict)

    def writes(self, action: Action) -> tuple[FieldDecision, ...]:
        return tuple(d for d in self.decisions if d.action is action)

    @property
    def collisions(self) -> tuple[FieldDecision, ...]:
        return tuple(d for d in self.decisions if d.collision)

    def shadow_after(self, *, wrote_marketo: bool, wrote_dynamics: bool) -> dict[str, FieldValue]:
        """The shadow to store: settled fields always, written fields only if the write succeeded."""
        values = dict(self.shadow_base)
        for decision in self.decisions:
            written = (decision.action is Action.TO_MARKETO and wrote_marketo) or (
                decision.action is Action.TO_DYNAMICS and wrote_dynamics
            )
            if decision.action is Action.IN_SYNC or written:
                values[decision.field.marketo] = decision.value
        return values


def _flow(field_map: FieldMap, towards: Side) -> bool:
    return field_map.direction.to_marketo if towards is Side.MARKETO else field_map.direction.to_dynamics


def _copy(
    field_map: FieldMap,
    value: FieldValue,
    towards: Side,
    reason: str,
    *,
    collision: bool = False,
    winner: Side | None = None,
) -> FieldDecision:
    if _flow(field_map, towards):
        action = Action.TO_MARKETO if towards is Side.MARKETO else Action.TO_DYNAMICS
    else:
        action = Action.BLOCKED
    return FieldDecision(field_map, action, value, collision, winner, reason)


def _other(side: Side) -> Side:
    return Side.DYNAMICS if side is Side.MARKETO else Side.MARKETO


def _winner(mapping: EntityMapping, field_map: FieldMap) -> tuple[Side, str]:
    """Who wins a collision on this field, and which rule says so."""
    named = mapping.winner(field_map)
    if not _flow(field_map, _other(named)) and _flow(field_map, named):
        return _other(named), f"one-way field, {field_map.direction.value}"
    return named, "field rule" if field_map.collision_winner else "entity rule"


def decide_field(
    mapping: EntityMapping, field_map: FieldMap, marketo: FieldValue, dynamics: FieldValue, shadow: object
) -> FieldDecision:
    """The rule for one field; all three values canonical (``shadow`` may be _MISSING)."""
    if marketo == dynamics:
        return FieldDecision(field_map, Action.IN_SYNC, marketo)
    if shadow is not _MISSING and marketo == shadow:
        return _copy(field_map, dynamics, Side.MARKETO, "changed in Dynamics")
    if shadow is not _MISSING and dynamics == shadow:
        return _copy(field_map, marketo, Side.DYNAMICS, "changed in Marketo")
    if shadow is _MISSING and (marketo is None) != (dynamics is None):
        # First sync of the pair and one side is empty: fill it, nobody loses anything.
        if marketo is None:
            return _copy(field_map, dynamics, Side.MARKETO, "empty in Marketo")
        return _copy(field_map, marketo, Side.DYNAMICS, "empty in Dynamics")
    winner, rule = _winner(mapping, field_map)
    why = "first sync, values differ" if shadow is _MISSING else "changed on both sides"
    reason = f"collision ({why}): {winner.value} wins ({rule})"
    if winner is Side.MARKETO:
        return _copy(field_map, marketo, Side.DYNAMICS, reason, collision=True, winner=winner)
    return _copy(field_map, dynamics, Side.MARKETO, reason, collision=True, winner=winner)


def reconcile(
    mapping: EntityMapping,
    marketo: Mapping[str, object],
    dynamics: Mapping[str, object],
    shadow: Mapping[str, FieldValue] | None,
) -> Plan:
    """Decide every mapped field of one linked pair.

    ``marketo`` is keyed by Marketo REST names, ``dynamics`` by Dynamics logical names, raw as
    each API returns them; ``shadow`` by Marketo names, canonical (None: never synced).
    """
    decisions = []
    for field_map in mapping.fields:
        m = canonical(field_map, marketo.get(field_map.marketo), Side.MARKETO)
        d = canonical(field_map, dynamics.get(field_map.dynamics), Side.DYNAMICS)
        s = shadow.get(field_map.marketo, _MISSING) if shadow is not None else _MISSING
        decisions.append(decide_field(mapping, field_map, m, d, s))
    base = dict(shadow or {})
    return Plan(tuple(decisions), base)


def initial_values(
    mapping: EntityMapping, record: Mapping[str, object], source: Side
) -> dict[str, FieldValue]:
    """Canonical values of a record about to be copied whole to the other side (creation)."""
    values: dict[str, FieldValue] = {}
    for field_map in mapping.fields:
        towards = Side.DYNAMICS if source is Side.MARKETO else Side.MARKETO
        if not _flow(field_map, towards):
            continue
        name = field_map.marketo if source is Side.MARKETO else field_map.dynamics
        values[field_map.marketo] = canonical(field_map, record.get(name), source)
    return values
