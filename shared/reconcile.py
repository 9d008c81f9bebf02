"""Where collisions are decided: the per-field reconcile rules. Pure: no I/O.

For each mapped field, compare Marketo's current value, Dynamics' current value and what the
shadow remembers (``shared.shadow``), all canonical (``shared.normalize.same`` compares them):

* equal on both sides -> nothing to write; the shadow records the value;
* changed on one side only -> copy it to the other side, if the field's direction allows;
* changed on both sides to different values -> a collision, won by the field's rule
  (Marketo for leads, Dynamics for contacts, unless configured otherwise). A one-way field is
  won by the side it flows from: the other side's value could never reach it, and a rule that
  names that side would leave the field diverged for good;
* never synced (a first link: a record linked to an existing person, a relink after a
  qualification or a merge, the initial sync, a field newly mapped) -> :func:`decide_first_link`:
  an empty side receives the other side's value (a blank never overwrites a value, on either
  side), and where both hold different values the first-link side (``options.first_link``,
  Dynamics by default: the system of record) fills the other.

Marketo has no conditional update and may not store what it is sent, so a value written to
Marketo stays unconfirmed in the shadow until its echo is seen, and a reconcile then tells:

* Marketo still holds its old value, or a truncation of the value sent, and no echo confirmed
  the write, no later change shows it was taken (a change whose old value is the one sent), and
  Marketo's activities since the write have been read -> it did not take it (Block Field
  Updates for the API, field length), unless Dynamics now holds that value too (nothing to
  decide: in sync): reported once, the field is *held* (the two sides differ
  on purpose) and nothing is copied back over the Dynamics value (until the activities are
  read, the field waits: nothing is written for it);
* the echo's old value is not what mdsync read -> someone changed the field in Marketo between
  mdsync's read and its write, and the write overwrote it: a collision after the fact, decided
  by the field's rule (Marketo wins for leads: the user's value is restored on both sides).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from shared import shadow as memory_of
from shared.mapping import EntityMapping, FieldMap, Side
from shared.normalize import canonical, same
from shared.notices import FieldValue
from shared.shadow import Memory

# Marketo field name -> the (old, new) values its own-write echoes reported, raw.
Echoes = Mapping[str, Sequence[tuple[object, object]]]


@dataclass(frozen=True)
class MarketoNews:
    """What a batch's notices say about one person in Marketo, beyond its current values:
    ``echoes``, the changes written through the API (mdsync's own, most likely); ``others``, the
    changes anyone else made (both per field, (old, new), raw); ``seen``: whether Marketo's
    activities since mdsync's last write have been read (an echo of this person, or mdsync's
    ``confirm`` notice, which comes after a poll). Without ``seen``, a value that looks refused
    may be a user's edit not yet read."""

    echoes: Echoes = field(default_factory=dict)
    others: Echoes = field(default_factory=dict)
    seen: bool = False


class Action(StrEnum):
    IN_SYNC = "in_sync"
    TO_DYNAMICS = "to_dynamics"
    TO_MARKETO = "to_marketo"
    TO_BOTH = "to_both"  # a Marketo value lost to mdsync's own write, restored on both sides
    BLOCKED = "blocked"  # the change's direction is not allowed for this field
    HELD = "held"  # Marketo did not take Dynamics' value: both keep theirs until one changes


@dataclass(frozen=True)
class FieldDecision:
    field: FieldMap
    action: Action
    value: FieldValue
    collision: bool = False
    winner: Side | None = None
    reason: str = ""
    # The canonical values read (what the shadow records for a held field).
    marketo: FieldValue = None
    dynamics: FieldValue = None
    # Newly found: Marketo did not take the value last sent (reported on the person).
    refused: str = ""
    # The last write to Marketo is still unconfirmed: keep remembering what Marketo held before.
    keep_before: bool = False
    before: FieldValue = None
    # The Marketo value mdsync's write overwrote, when its echo showed one (a collision found
    # after the write); empty otherwise (a 1-tuple, so that an overwritten blank shows too).
    overwritten: tuple[FieldValue, ...] = ()

    @property
    def to_marketo(self) -> bool:
        return self.action in (Action.TO_MARKETO, Action.TO_BOTH)

    @property
    def to_dynamics(self) -> bool:
        return self.action in (Action.TO_DYNAMICS, Action.TO_BOTH)


@dataclass(frozen=True)
class Plan:
    """What to write where for one linked pair, and the shadow once the writes succeed."""

    decisions: tuple[FieldDecision, ...]
    shadow_base: dict[str, FieldValue] = field(default_factory=dict)

    def writes(self, action: Action) -> tuple[FieldDecision, ...]:
        return tuple(d for d in self.decisions if d.action is action)

    def towards(self, side: Side) -> tuple[FieldDecision, ...]:
        """Every decision that writes to ``side`` (restores included)."""
        return tuple(d for d in self.decisions if (d.to_marketo if side is Side.MARKETO else d.to_dynamics))

    @property
    def collisions(self) -> tuple[FieldDecision, ...]:
        return tuple(d for d in self.decisions if d.collision)

    @property
    def refusals(self) -> tuple[FieldDecision, ...]:
        return tuple(d for d in self.decisions if d.refused)

    def shadow_after(
        self, *, wrote_marketo: bool, wrote_dynamics: bool, dropped: Collection[str] = ()
    ) -> dict[str, FieldValue]:
        """The shadow to store: settled fields always, written fields only if the write succeeded
        (``dropped``: fields, by Marketo name, whose value was left out of the write and
        reported; they are held, each side's value remembered, so nothing is reported or tried
        again until one side changes)."""
        values = dict(self.shadow_base)
        for decision in self.decisions:
            name = decision.field.marketo
            if name in dropped:
                # Left out and reported: held until one side changes, so it is reported once.
                memory_of.diverge(values, name, decision.dynamics, decision.marketo)
                continue
            action = decision.action
            if action is Action.IN_SYNC:
                memory_of.settle(values, name, decision.value)
                if decision.keep_before:
                    memory_of.sent(values, name, decision.value, decision.before)
            elif action is Action.HELD:
                if decision.refused:
                    memory_of.diverge(values, name, decision.dynamics, decision.marketo)
            elif action is Action.TO_DYNAMICS and wrote_dynamics:
                memory_of.settle(values, name, decision.value)
            elif (action is Action.TO_MARKETO and wrote_marketo) or (
                action is Action.TO_BOTH and wrote_marketo and wrote_dynamics
            ):
                memory_of.sent(values, name, decision.value, decision.marketo)
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


def _one_way_source(field_map: FieldMap, named: Side) -> Side:
    """``named``, unless the field cannot flow from it: a one-way field's source always wins."""
    if not _flow(field_map, _other(named)) and _flow(field_map, named):
        return _other(named)
    return named


def _winner(mapping: EntityMapping, field_map: FieldMap) -> tuple[Side, str]:
    """Who wins a collision on this field, and which rule says so."""
    named = mapping.winner(field_map)
    winner = _one_way_source(field_map, named)
    if winner is not named:
        return winner, f"one-way field, {field_map.direction.value}"
    return named, "field rule" if field_map.collision_winner else "entity rule"


# --- a first link --------------------------------------------------------------------------------


def decide_first_link(
    field_map: FieldMap, marketo: FieldValue, dynamics: FieldValue, fills: Side = Side.DYNAMICS
) -> FieldDecision:
    """The first-link rule for one field (both values canonical). ``fills``: the side whose
    value wins where both hold different values (``field_map.first_link`` overrides it; a
    one-way field's source always wins). A blank never overwrites a value."""
    if same(field_map, marketo, dynamics):
        return FieldDecision(field_map, Action.IN_SYNC, marketo, marketo=marketo, dynamics=dynamics)
    if marketo is None:
        decision = _copy(field_map, dynamics, Side.MARKETO, "first link: empty in Marketo")
    elif dynamics is None:
        decision = _copy(field_map, marketo, Side.DYNAMICS, "first link: empty in Dynamics")
    else:
        named = field_map.first_link or fills
        source = _one_way_source(field_map, named)
        why = f"one-way field, {field_map.direction.value}" if source is not named else "first-link rule"
        value = marketo if source is Side.MARKETO else dynamics
        reason = f"first link, values differ: {source.value} fills {_other(source).value} ({why})"
        decision = _copy(field_map, value, _other(source), reason)
    return replace(decision, marketo=marketo, dynamics=dynamics)


# --- a linked pair -------------------------------------------------------------------------------


def _changed(
    mapping: EntityMapping,
    field_map: FieldMap,
    values: tuple[FieldValue, FieldValue],
    shadows: tuple[FieldValue, FieldValue],
) -> FieldDecision:
    """Each side compared with what the shadow remembers of it ((Marketo, Dynamics) both)."""
    marketo, dynamics = values
    marketo_shadow, dynamics_shadow = shadows
    if same(field_map, marketo, dynamics):
        return FieldDecision(field_map, Action.IN_SYNC, marketo)
    in_marketo = not same(field_map, marketo, marketo_shadow)
    in_dynamics = not same(field_map, dynamics, dynamics_shadow)
    if not in_marketo and not in_dynamics:
        return FieldDecision(field_map, Action.HELD, dynamics, reason="Marketo does not take this value")
    if not in_marketo:
        return _copy(field_map, dynamics, Side.MARKETO, "changed in Dynamics")
    if not in_dynamics:
        return _copy(field_map, marketo, Side.DYNAMICS, "changed in Marketo")
    winner, rule = _winner(mapping, field_map)
    reason = f"collision (changed on both sides): {winner.value} wins ({rule})"
    if winner is Side.MARKETO:
        return _copy(field_map, marketo, Side.DYNAMICS, reason, collision=True, winner=winner)
    return _copy(field_map, dynamics, Side.MARKETO, reason, collision=True, winner=winner)


def _refusal(field_map: FieldMap, marketo: FieldValue, memory: Memory) -> str:
    """Why Marketo's value shows it did not take the value last sent ("" when it did, or when
    it changed since for another reason)."""
    sent = memory.value
    if same(field_map, marketo, memory.before):
        return (
            f"Marketo did not take {field_map.marketo} = {sent!r} and keeps {marketo!r} "
            "(is Block Field Updates on for the Web service API?); the values differ until one changes"
        )
    if (
        isinstance(sent, str)
        and isinstance(marketo, str)
        and len(marketo) < len(sent)
        and sent.startswith(marketo)
    ):
        return (
            f"Marketo truncated {field_map.marketo} to {len(marketo)} of its {len(sent)} characters; "
            "Dynamics keeps the whole value and the values differ until one changes"
        )
    return ""


def _echo_of_write(
    field_map: FieldMap, memory: Memory, echoes: Sequence[tuple[FieldValue, FieldValue]]
) -> tuple[bool, FieldValue | None, bool]:
    """(confirmed, the value mdsync's write overwrote or None, found): what the echoes of the
    last write say. A write whose echo's old value is not what mdsync read overwrote a change
    made between mdsync's read and its write."""
    confirmed = False
    for old, new in echoes:
        if not same(field_map, new, memory.value):
            continue
        if same(field_map, old, memory.before):
            confirmed = True
        else:
            return False, old, True
    return confirmed, None, False


def _restore(
    mapping: EntityMapping, field_map: FieldMap, lost: FieldValue, marketo: FieldValue
) -> FieldDecision:
    winner, rule = _winner(mapping, field_map)
    reason = (
        f"collision (changed in Marketo between mdsync's read and its write, which overwrote it): "
        f"{winner.value} wins ({rule})"
    )
    if winner is Side.MARKETO:
        decision = FieldDecision(
            field_map, Action.TO_BOTH, lost, True, winner, reason + ": restored on both sides"
        )
    else:
        decision = FieldDecision(field_map, Action.IN_SYNC, marketo, True, winner, reason)
    return replace(decision, overwritten=(lost,))


def _pending(
    mapping: EntityMapping,
    field_map: FieldMap,
    values: tuple[FieldValue, FieldValue],
    memory: Memory,
    news: tuple[Sequence[tuple[FieldValue, FieldValue]], Sequence[tuple[FieldValue, FieldValue]], bool],
) -> FieldDecision:
    """The field's last write to Marketo is unconfirmed: what do Marketo's value and the news
    (echoes, others' changes, activities read) say of it?"""
    marketo, dynamics = values
    echoes, others, seen = news
    confirmed, lost, found = _echo_of_write(field_map, memory, echoes)
    if found and same(field_map, marketo, memory.value):
        return _restore(mapping, field_map, lost, marketo)
    if same(field_map, marketo, dynamics) and not same(field_map, marketo, memory.value):
        # Marketo no longer holds the value sent but agrees with Dynamics: whatever became of
        # the write, there is nothing left to decide or report.
        return FieldDecision(field_map, Action.IN_SYNC, marketo)
    # Someone changed the field from the value sent: Marketo had taken it.
    taken = confirmed or any(same(field_map, old, memory.value) for old, _ in others)
    marketo_shadow, refused = memory.value, ""
    if not same(field_map, marketo, memory.value) and not taken:
        refused = _refusal(field_map, marketo, memory)
        if refused and not seen:
            # Not taken, or a user's change not read yet: wait for the echo or the confirmation.
            return FieldDecision(field_map, Action.HELD, dynamics, reason="waiting for Marketo's echo")
        marketo_shadow = marketo if refused else memory.value
    decision = _changed(mapping, field_map, values, (marketo_shadow, memory.value))
    keep = same(field_map, marketo, memory.value) and not taken and decision.action is Action.IN_SYNC
    return replace(decision, refused=refused, keep_before=keep)


def decide_field(
    mapping: EntityMapping,
    field_map: FieldMap,
    marketo: FieldValue,
    dynamics: FieldValue,
    memory: Memory | None,
    *,
    first_link: Side = Side.DYNAMICS,
    echoes: Sequence[tuple[FieldValue, FieldValue]] = (),
    others: Sequence[tuple[FieldValue, FieldValue]] = (),
    seen: bool = False,
) -> FieldDecision:
    """The rule for one field; values, echoes and others' changes canonical (``memory`` None:
    never synced); ``seen``: see :class:`MarketoNews`."""
    if memory is None:
        return decide_first_link(field_map, marketo, dynamics, first_link)
    if memory.pending:
        decision = _pending(mapping, field_map, (marketo, dynamics), memory, (echoes, others, seen))
    else:
        decision = _changed(mapping, field_map, (marketo, dynamics), (memory.marketo, memory.value))
    return replace(decision, marketo=marketo, dynamics=dynamics, before=memory.before)


def reconcile(
    mapping: EntityMapping,
    marketo: Mapping[str, object],
    dynamics: Mapping[str, object],
    shadow: Mapping[str, FieldValue] | None,
    *,
    first_link: Side = Side.DYNAMICS,
    news: MarketoNews | None = None,
) -> Plan:
    """Decide every mapped field of one linked pair.

    ``marketo`` is keyed by Marketo REST names, ``dynamics`` by Dynamics logical names, raw as
    each API returns them; ``shadow`` by Marketo names, canonical (None: never synced, a first
    link); ``news``: what the batch's notices say about the person in Marketo.
    """
    decisions = []
    values = shadow or {}
    news = news or MarketoNews()
    for field_map in mapping.fields:
        m = canonical(field_map, marketo.get(field_map.marketo), Side.MARKETO)
        d = canonical(field_map, dynamics.get(field_map.dynamics), Side.DYNAMICS)
        decision = decide_field(
            mapping,
            field_map,
            m,
            d,
            memory_of.recall(values, field_map.marketo),
            first_link=first_link,
            echoes=_canonical_changes(field_map, news.echoes),
            others=_canonical_changes(field_map, news.others),
            seen=news.seen,
        )
        decisions.append(decision)
    return Plan(tuple(decisions), dict(values))


def _canonical_changes(field_map: FieldMap, changes: Echoes) -> list[tuple[FieldValue, FieldValue]]:
    return [
        (canonical(field_map, old, Side.MARKETO), canonical(field_map, new, Side.MARKETO))
        for old, new in changes.get(field_map.marketo, ())
    ]


def first_link_plan(
    mapping: EntityMapping,
    marketo: Mapping[str, object],
    dynamics: Mapping[str, object],
    *,
    first_link: Side = Side.DYNAMICS,
) -> Plan:
    """The plan for a pair linked for the first time: the rule the worker applies when a record
    is linked to an existing person or relinked, and the initial sync applies to every pair."""
    return reconcile(mapping, marketo, dynamics, None, first_link=first_link)


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
