"""What must hold once a chaos round has converged.

1. Every linked pair holds the same mapped values on both sides (canonically compared), except
   the pairs poisoned on purpose, whose sync is expected to fail, and the blocked fields Marketo
   did not take (held: each side keeps its value, and the refusal is in the person's sync log).
2. Every edit made in the round is there on both sides (no change lost); for a collision, the
   value of the side the rule names (Marketo for leads, Dynamics for contacts); where Marketo
   did not take a value, the Dynamics edit is in Dynamics and Marketo kept its own.
3. Every lead created in Dynamics is linked to a Marketo person holding its values.
4. Links are intact: each pair is still linked to its own record.
5. Parked notices and dead letters hold only permanent validation failures of poisoned pairs
   and the new leads whose email Marketo's filter cannot carry, and each poisoned pair's failure
   is in the sync log and in its Marketo Activity Log.
6. Each such lead is reported: a failure in the sync log and a parked notice, both naming the
   record, neither holding its email; no Marketo person is linked to it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mdsync.bench.seed import Pair
from mdsync.harness import LocalSystem
from shared.mapping import Side
from shared.normalize import canonical
from shared.replay import subject
from shared.sync.activity_log import FAILURE_TYPE

PairKey = tuple[str, int]
# The value both sides must hold, or (Marketo's, Dynamics') where they differ on purpose.
Expectation = str | tuple[str, str]


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str


def _person(system: LocalSystem, marketo_id: int) -> dict[str, Any]:
    state = system.stack.marketo.state
    with state.lock:
        return dict(state.persons.get(marketo_id) or {})


def _row(system: LocalSystem, entity: str, row_id: str) -> dict[str, Any]:
    store = system.stack.dataverse.state.store
    with store.lock:
        return dict(store.get(entity, row_id.lower()) or {})


def converged(
    system: LocalSystem,
    pairs: Mapping[PairKey, Pair],
    poisoned: set[PairKey],
    held: Collection[tuple[PairKey, str]] = (),
) -> list[Violation]:
    mapping = system.deps.mapping
    found = []
    for key, pair in pairs.items():
        if key in poisoned:
            continue
        person, row = _person(system, pair.marketo_id), _row(system, pair.entity, pair.dynamics_id)
        for fmap in mapping.entity(pair.entity).fields:
            if (key, fmap.marketo) in held:
                continue
            left = canonical(fmap, person.get(fmap.marketo), Side.MARKETO)
            right = canonical(fmap, row.get(fmap.dynamics), Side.DYNAMICS)
            if left != right:
                found.append(
                    Violation("converged", f"{pair.entity} {key[1]} {fmap.marketo}: {left!r} != {right!r}")
                )
    return found


def expected_values(
    system: LocalSystem,
    pairs: Mapping[PairKey, Pair],
    expected: Mapping[tuple[PairKey, str, str], Expectation],
    rule: str,
) -> list[Violation]:
    """``expected``: (pair, Marketo field, Dynamics column) -> the value both sides must hold,
    or (Marketo's, Dynamics')."""
    found = []
    for (key, field, column), value in expected.items():
        pair = pairs[key]
        want = value if isinstance(value, tuple) else (value, value)
        in_marketo = _person(system, pair.marketo_id).get(field)
        in_dynamics = _row(system, pair.entity, pair.dynamics_id).get(column)
        if (in_marketo, in_dynamics) != want:
            found.append(
                Violation(
                    rule,
                    f"{pair.entity} {key[1]} {field}: want {want!r}, "
                    f"Marketo {in_marketo!r}, Dynamics {in_dynamics!r}",
                )
            )
    return found


def refusals_reported(
    system: LocalSystem, pairs: Mapping[PairKey, Pair], held: Collection[tuple[PairKey, str]]
) -> list[Violation]:
    """Every held field was reported on its person (a value Marketo did not take)."""
    found = []
    for key, field in held:
        pair = pairs.get(key)
        if pair is None:
            continue
        log = system.deps.state.read_log(marketo_id=pair.marketo_id, limit=500)
        if not any(e.action == "failed" and "did not take" in e.detail and field in e.detail for e in log):
            found.append(Violation("refusal reported", f"{pair.entity} {key[1]} {field}: not reported"))
    return found


def links_intact(system: LocalSystem, pairs: Mapping[PairKey, Pair]) -> list[Violation]:
    links = system.deps.state.get_links_by_marketo(p.marketo_id for p in pairs.values())
    found = []
    for key, pair in pairs.items():
        link = links.get(pair.marketo_id)
        if link is None or link.dynamics_id.lower() != pair.dynamics_id.lower() or link.entity != pair.entity:
            found.append(Violation("links", f"{pair.entity} {key[1]}: link is now {link}"))
    return found


def created_linked(system: LocalSystem, created: Mapping[str, tuple[str, str, str]]) -> list[Violation]:
    """``created``: lead id -> (first name, last name, email) typed in Dynamics."""
    links = system.deps.state.get_links_by_dynamics("lead", created)
    found = []
    for lead_id, (first, last, email) in created.items():
        link = links.get(lead_id.lower())
        if link is None:
            found.append(Violation("no change lost", f"new lead {lead_id} ({email}) has no Marketo person"))
            continue
        person = _person(system, link.marketo_id)
        got = (person.get("firstName"), person.get("lastName"), str(person.get("email") or "").lower())
        if got != (first, last, email):
            found.append(Violation("no change lost", f"new lead {lead_id}: Marketo person holds {got}"))
    return found


def _failure_type_id(system: LocalSystem) -> int | None:
    state = system.stack.marketo.state
    with state.lock:
        types = state.custom_types.listing()
    return next((int(t["id"]) for t in types if t.get("apiName") == FAILURE_TYPE.api_name), None)


def failures_logged(system: LocalSystem, pairs: Iterable[Pair]) -> list[Violation]:
    type_id = _failure_type_id(system)
    found = []
    for pair in pairs:
        log = system.deps.state.read_log(marketo_id=pair.marketo_id, limit=500)
        if not any(entry.action == "failed" for entry in log):
            found.append(
                Violation("failure logged", f"person {pair.marketo_id}: no 'failed' in the sync log")
            )
        activities = system.marketo_admin.activities(pair.marketo_id)
        if type_id is None or not any(a.get("activityTypeId") == type_id for a in activities):
            found.append(
                Violation("failure logged", f"person {pair.marketo_id}: no failure in its Activity Log")
            )
    return found


def bad_records_reported(system: LocalSystem, bad: Mapping[str, str]) -> list[Violation]:
    """``bad``: lead id -> the email Marketo's filter cannot carry."""
    state = system.deps.state
    links = state.get_links_by_dynamics("lead", bad)
    reasons = [p.reason for p in state.parked()]
    found = []
    for lead_id, email in bad.items():
        failed = [e for e in state.read_log(dynamics_id=lead_id, limit=50) if e.action == "failed"]
        if lead_id.lower() in {k.lower() for k in links}:
            found.append(Violation("one bad record", f"lead {lead_id} ({email!r}) was linked"))
        if not failed:
            found.append(Violation("one bad record", f"lead {lead_id}: no failure in the sync log"))
        if any(email in e.detail for e in failed) or any(email in r for r in reasons):
            found.append(Violation("redacted", f"lead {lead_id}: its email reached the sync log"))
        if not any(lead_id in r for r in reasons):
            found.append(Violation("one bad record", f"lead {lead_id}: no parked notice names it"))
    return found


def parked_and_dead(
    system: LocalSystem, poisoned: Iterable[Pair], bad: Mapping[str, str], already: set[str]
) -> list[Violation]:
    """Parked notices and dead letters not seen before (``already``, updated): only validation
    failures of poisoned pairs, and the leads with emails Marketo cannot filter on (``bad``), may
    be there."""
    allowed = {str(p.marketo_id) for p in poisoned} | {p.dynamics_id.lower() for p in poisoned}
    unfilterable = {lead_id.lower() for lead_id in bad}
    found = []
    items = [(p.dedup_id, p.body, p.reason) for p in system.deps.state.parked()]
    items += [(d.message_id, d.body, f"{d.reason}: {d.description}") for d in system.queue.dead_letters()]
    for ident, body, reason in items:
        if ident in already:
            continue
        already.add(ident)
        about = subject(body) or "?"
        record = about.split(" ")[-1].lower()
        if "validation" in reason.lower() and record in allowed:
            continue
        if "email" in reason and record in unfilterable:
            continue
        found.append(Violation("parked or dead-lettered", f"{about}: {reason}"))
    return found
