"""The reconcile rules and the worker together, for any interleaving of edits on both sides.

Users edit a linked lead and a linked contact in both systems; the notices of those edits reach
the real ``SyncWorker.process`` in batches hypothesis builds from everything seen so far:
duplicated, reordered, stale, or dropped. Whatever arrives, a batch that names a person
reconciles that person from both systems' current values, so a small model predicts every
value on both sides after every batch, and every collision's winner (Marketo for the lead,
Dynamics for the contact). At the end the real sweep and poller recover whatever was dropped,
through the local host, and both systems agree on every mapped field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdsync.harness import WEBHOOK_NAME, LocalSystem
from shared.dataverse import webhooks
from shared.notices import Entity, FieldChange, Kind, Notice, Source
from tests.e2e.test_worker_support import SETS, USER

FIELDS = {"firstName": "firstname", "title": "jobtitle", "city": "address1_city"}
VALUES = ["Ana", "Bo", "Cy", None]
ENTITIES = ("lead", "contact")
WINNER = {"lead": "marketo", "contact": "dynamics"}
WINS = re.compile(r"(marketo|dynamics) wins")

Value = str | None
Changes = dict[str, list[tuple[Value, Value]]]


@dataclass
class Side:
    """One person as the model sees it: both systems' values and the shadow, per field."""

    entity: str
    record_id: str
    marketo_id: int
    marketo: dict[str, Value] = field(default_factory=lambda: dict.fromkeys(FIELDS, "Ana"))
    dynamics: dict[str, Value] = field(default_factory=lambda: dict.fromkeys(FIELDS, "Ana"))
    shadow: dict[str, Value] = field(default_factory=lambda: dict.fromkeys(FIELDS, "Ana"))
    # Field -> (Marketo's value before, the value sent): mdsync's last write to Marketo, not yet
    # confirmed by its echo (the test delivers no echoes; the poller does, at the end).
    unconfirmed: dict[str, tuple[Value, Value]] = field(default_factory=dict)

    def sync(self, others: Changes | None = None) -> list[str]:
        """The rules, spelled out; returns the winner of each collision. ``others``: the
        Marketo users' changes the batch carries, per field; None: Marketo's activities were
        read (the poll at the end), so every write is known to have been taken."""
        winners = []
        for name in FIELDS:
            if others is not None and self._waits(name, others.get(name, [])):
                continue
            m, d, s = self.marketo[name], self.dynamics[name], self.shadow[name]
            if m == d:
                value = m
            elif m == s:
                value = d
            elif d == s:
                value = m
            else:
                winners.append(WINNER[self.entity])
                value = m if WINNER[self.entity] == "marketo" else d
            self._remember(name, value, others)
            self.marketo[name] = self.dynamics[name] = self.shadow[name] = value
        return winners

    def _waits(self, name: str, others: list[tuple[Value, Value]]) -> bool:
        """Marketo holds its value from before the unconfirmed write and no change shows the
        write was taken: a refusal or a user's revert, not told apart until Marketo's activities
        are read, so the field waits (unless both sides agree: nothing to decide)."""
        if name not in self.unconfirmed:
            return False
        before, sent = self.unconfirmed[name]
        m, d = self.marketo[name], self.dynamics[name]
        return m == before != d and not _taken(sent, others)

    def _remember(self, name: str, value: Value, others: Changes | None) -> None:
        m = self.marketo[name]
        pending = self.unconfirmed.pop(name, None)
        if value != m:
            self.unconfirmed[name] = (m, value)
        elif pending and others is not None and m == pending[1] == self.dynamics[name]:
            # Still in sync: still unconfirmed, unless a user's change shows it was taken.
            self.unconfirmed.update({} if _taken(m, others.get(name, [])) else {name: pending})


def _taken(sent: Value, others: list[tuple[Value, Value]]) -> bool:
    """A user's change from the value sent shows Marketo had taken it."""
    return any(old == sent for old, _ in others)


edits = st.tuples(
    st.sampled_from(["edit"]),
    st.sampled_from(ENTITIES),
    st.sampled_from(["marketo", "dynamics"]),
    st.sampled_from(sorted(FIELDS)),
    st.sampled_from(VALUES),
)
# The same field edited on both sides before anything is delivered: a collision, unless the
# values happen to agree.
both = st.tuples(
    st.sampled_from(["both"]),
    st.sampled_from(ENTITIES),
    st.sampled_from(sorted(FIELDS)),
    st.sampled_from(VALUES),
    st.sampled_from(VALUES),
)
deliveries = st.tuples(st.sampled_from(["deliver"]), st.lists(st.integers(0, 30), max_size=8))
steps = st.lists(st.one_of(edits, both, deliveries), min_size=1, max_size=10)


def _setup(system: LocalSystem) -> dict[str, Side]:
    system.reset()
    start = dict.fromkeys(FIELDS.values(), "Ana")
    ids = {
        entity: system.dataverse_admin.create_as(
            USER, SETS[entity], {**start, "lastname": "Model", "emailaddress1": f"{entity}@fabrikam.example"}
        )
        for entity in ENTITIES
    }
    system.sync()
    system.sweep()  # the sweep's starting point, for the recovery at the end
    webhooks.unregister(system.deps.dataverse, WEBHOOK_NAME)  # notices come from the test now
    links = {e: system.deps.state.get_links_by_dynamics(e, [i])[i] for e, i in ids.items()}
    return {e: Side(e, ids[e], links[e].marketo_id) for e in ENTITIES}


def _edit(system: LocalSystem, side: Side, where: str, name: str, value: Value) -> Notice:
    now = datetime.now(UTC)
    if where == "marketo":
        old, side.marketo[name] = side.marketo[name], value
        system.marketo_admin.user_edit(side.marketo_id, {name: value})
        return Notice(
            source=Source.MARKETO,
            entity=Entity.PERSON,
            record_id=str(side.marketo_id),
            kind=Kind.UPDATED,
            changes={name: FieldChange(old=old, new=value)},
            occurred_at=now,
        )
    old, side.dynamics[name] = side.dynamics[name], value
    column = FIELDS[name]
    system.dataverse_admin.update_as(USER, SETS[side.entity], side.record_id, {column: value})
    return Notice(
        source=Source.DYNAMICS,
        entity=Entity(side.entity),
        record_id=side.record_id,
        kind=Kind.UPDATED,
        changes={column: FieldChange(old=old, new=value)},
        occurred_at=now,
    )


def _touches(notice: Notice, side: Side) -> bool:
    return notice.record_id in (str(side.marketo_id), side.record_id)


def _marketo_changes(batch: list[Notice], side: Side) -> Changes:
    """The Marketo users' changes to the person that the batch carries, per field."""
    changes: Changes = {}
    for notice in batch:
        if notice.source is Source.MARKETO and notice.record_id == str(side.marketo_id):
            for name, change in notice.changes.items():
                changes.setdefault(name, []).append((change.old, change.new))  # type: ignore[arg-type]
    return changes


def _check(system: LocalSystem, sides: dict[str, Side]) -> None:
    shadows = system.deps.state.get_shadows(s.marketo_id for s in sides.values())
    for side in sides.values():
        person = system.marketo_admin.person(side.marketo_id)
        row = system.dataverse_admin.row(side.entity, side.record_id) or {}
        assert {n: person.get(n) for n in FIELDS} == side.marketo, side.entity
        assert {n: row.get(c) for n, c in FIELDS.items()} == side.dynamics, side.entity
        assert {n: shadows[side.marketo_id].values.get(n) for n in FIELDS} == side.shadow, side.entity


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_any_interleaving_converges_and_collisions_follow_the_rule(
    local_system: LocalSystem, steps: list[tuple[object, ...]]
) -> None:
    system = local_system
    sides = _setup(system)
    seen: list[Notice] = []
    expected: dict[str, list[str]] = {e: [] for e in ENTITIES}
    for step in steps:
        if step[0] == "edit":
            _, entity, where, name, value = step
            seen.append(_edit(system, sides[str(entity)], str(where), str(name), value))  # type: ignore[arg-type]
            continue
        if step[0] == "both":
            _, entity, name, in_marketo, in_dynamics = step
            seen.append(_edit(system, sides[str(entity)], "marketo", str(name), in_marketo))  # type: ignore[arg-type]
            seen.append(_edit(system, sides[str(entity)], "dynamics", str(name), in_dynamics))  # type: ignore[arg-type]
            continue
        picks = step[1]
        assert isinstance(picks, list)
        if not seen:
            continue
        batch = [seen[i % len(seen)] for i in picks]
        result = system.deps.worker.process(batch)
        assert result.rescheduled == result.parked == result.failures == 0
        for entity, side in sides.items():
            if any(_touches(n, side) for n in batch):
                expected[entity] += side.sync(_marketo_changes(batch, side))
        _check(system, sides)
    # Whatever was dropped: the sweep and the poller find it, the host's worker syncs it.
    system.sweep()
    system.sync()
    for entity, side in sides.items():
        expected[entity] += side.sync()
        assert side.marketo == side.dynamics
    _check(system, sides)
    for entity, side in sides.items():
        collisions = [
            e for e in system.deps.state.read_log(marketo_id=side.marketo_id) if e.action == "collision"
        ]
        assert sorted(WINS.search(e.detail).group(1) for e in collisions) == sorted(expected[entity])  # type: ignore[union-attr]
