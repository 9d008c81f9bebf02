"""A chaos scenario, drawn from a seed before anything runs. Pure: the same seed gives the same
plan (pairs, edits, faults, values) and the same expected outcome; only the timing of the real
run varies.

A scenario is a few rounds. In each round some faults are armed, then:

* collisions: pairs never touched before get the same field edited on both sides while the
  Dataverse webhooks are held, so neither edit can sync before the other is made;
* concurrent edits, while webhooks flow and the poller runs: one side only, both sides on
  different fields, the same field twice on one side, new leads in Dynamics;
* in the first round, poison edits: Marketo values Dynamics must refuse (a title longer than
  the column allows, a city a business-rule plug-in rejects), and new leads whose emails
  Marketo's filter cannot take (a space, a comma, a foreign letter) among the good new leads;
* events that move links, on pairs set aside for them: leads qualified into contacts (whose
  notes the contact does not carry), a person merged in Marketo into a duplicate, a contact
  merged in Dynamics into another, and races: a lead's title edited in Dynamics and, moments
  later, in Marketo (whichever way the timing falls, Marketo's value must win on a lead);
* in one round, a capture run killed mid-run (the sweep or the poll, on this host instance or
  another) before anything else: capture must resume within one schedule period;
* in one round, the writes to Dynamics of one batch refused for a permission (403), so its
  notices are parked, then replayed at once, well within the queue's duplicate window.

The scenario also blocks updates of the country field in Marketo for the API (Block Field
Updates): a Dynamics edit of a country Marketo already holds is not taken, is reported, and
the two sides keep their values until one changes again.

Within a round a field of a pair is edited from one side only (collisions and races aside), and
every round ends converged, so each expected value is unambiguous.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

FIELDS = {
    "lead": (
        ("firstName", "firstname"),
        ("lastName", "lastname"),
        ("title", "jobtitle"),
        ("city", "address1_city"),
        ("country", "address1_country"),
        ("company", "companyname"),
    ),
    "contact": (
        ("firstName", "firstname"),
        ("lastName", "lastname"),
        ("title", "jobtitle"),
        ("city", "address1_city"),
        ("country", "address1_country"),
    ),
}
REJECTED_PREFIX = "REJECT"  # the plug-in the scenario installs refuses cities starting with it
TOO_LONG_TITLE = 150  # Dynamics jobtitle holds 100 characters, Marketo's title 255
BLOCKED = ("country", "address1_country")  # Block Field Updates for the API, in Marketo
RACED = ("title", "jobtitle")


@dataclass(frozen=True)
class Fault:
    kind: str
    count: int = 1
    value: float = 0.0  # status, Retry-After, seconds or milliseconds, depending on the kind
    code: str = ""

    def describe(self) -> str:
        detail = self.code or (f"{self.value:g}" if self.value else "")
        return f"{self.kind}({detail}{'x' if detail else ''}{self.count})"


@dataclass(frozen=True)
class Edit:
    """One user edit. ``side``: "dynamics" or "marketo"; ``pair``: (entity, index)."""

    side: str
    pair: tuple[str, int]
    marketo_field: str
    dynamics_column: str
    value: str


@dataclass(frozen=True)
class Create:
    """A new lead created in Dynamics by a user."""

    first: str
    last: str
    email: str


PairKey = tuple[str, int]


@dataclass(frozen=True)
class Kill:
    """A capture run killed mid-run (``run``: "dynamics-sweep" or "marketo-poll"); with
    ``elsewhere`` it ran on another host instance, so its lease must lapse."""

    run: str
    elsewhere: bool = False


@dataclass
class Round:
    faults: list[Fault] = field(default_factory=list)
    collisions: list[tuple[Edit, Edit]] = field(default_factory=list)
    edits: list[Edit | Create] = field(default_factory=list)
    poison: list[Edit] = field(default_factory=list)
    qualifications: list[PairKey] = field(default_factory=list)  # leads qualified
    marketo_merges: list[PairKey] = field(default_factory=list)  # persons merged into a duplicate
    dynamics_merges: list[tuple[PairKey, PairKey]] = field(default_factory=list)  # (merged, into)
    races: list[tuple[Edit, Edit]] = field(default_factory=list)  # (Dynamics edit, Marketo edit)
    # New leads whose email Marketo's filter cannot carry: reported and parked, never linked.
    bad_creates: list[Create] = field(default_factory=list)
    kill: Kill | None = None
    park_and_replay: bool = False


@dataclass(frozen=True)
class ScenarioSize:
    leads: int = 40
    contacts: int = 20
    rounds: int = 3
    edits_per_round: int = 24
    collisions_per_round: int = 4
    qualifications_per_round: int = 1
    marketo_merges_per_round: int = 1
    dynamics_merges_per_round: int = 1
    races_per_round: int = 1


@dataclass
class Scenario:
    seed: int
    size: ScenarioSize
    rounds: list[Round]


def _faults(rng: random.Random) -> list[Fault]:
    catalogue: list[Callable[[], Fault]] = [
        lambda: Fault("dataverse_throttle", rng.randint(1, 4), rng.choice((1, 2))),
        lambda: Fault("dataverse_error", rng.randint(1, 3), rng.choice((500, 502, 503, 504))),
        lambda: Fault("dataverse_latency", rng.randint(1, 3), round(rng.uniform(0.2, 1.2), 2)),
        lambda: Fault(
            "marketo_error", rng.randint(1, 2), code=rng.choice(("606", "615", "604", "608", "611"))
        ),
        lambda: Fault("marketo_latency", rng.randint(1, 3), rng.choice((300, 800, 1500))),
        lambda: Fault("marketo_token_expiry"),
        lambda: Fault("dataverse_token_revoked"),
        lambda: Fault("drop_webhooks", rng.randint(1, 3)),
        lambda: Fault("duplicate_webhooks", rng.randint(1, 3)),
        lambda: Fault("crash_after_write", rng.randint(1, 2)),
    ]
    return [make() for make in rng.sample(catalogue, rng.randint(2, 4))]


class _Planner:
    def __init__(self, seed: int, size: ScenarioSize) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.size = size
        pairs = [("lead", i) for i in range(size.leads)] + [("contact", i) for i in range(size.contacts)]
        self.rng.shuffle(pairs)
        fresh = size.rounds * size.collisions_per_round
        self.poisoned = [p for p in pairs if p[0] == "lead"][:1] + [p for p in pairs if p[0] == "contact"][:1]
        rest = [p for p in pairs if p not in self.poisoned]
        # Pairs set aside for the events that move links: a lead each per qualification, Marketo
        # merge and race; two contacts per Dynamics merge.
        leads_needed = size.rounds * (
            size.qualifications_per_round + size.marketo_merges_per_round + size.races_per_round
        )
        contacts_needed = size.rounds * size.dynamics_merges_per_round * 2
        self.event_leads = [p for p in rest if p[0] == "lead"][:leads_needed]
        self.event_contacts = [p for p in rest if p[0] == "contact"][:contacts_needed]
        if len(self.event_leads) < leads_needed or len(self.event_contacts) < contacts_needed:
            raise ValueError("the scenario needs more pairs than its events use")
        rest = [p for p in rest if p not in self.event_leads and p not in self.event_contacts]
        self.fresh, self.active = rest[:fresh], rest[fresh:]
        if not self.active:
            raise ValueError("the scenario needs more pairs than its collisions use")
        self.serial = 0
        self.kill_round = self.rng.randrange(size.rounds)
        self.replay_round = self.rng.randrange(size.rounds)

    def value(self, tag: str) -> str:
        self.serial += 1
        return f"{tag}{self.seed % 10_000}-{self.serial}"

    def edit(self, side: str, pair: tuple[str, int], fields: tuple[str, str]) -> Edit:
        return Edit(side, pair, fields[0], fields[1], self.value("m" if side == "marketo" else "d"))

    def round(self, number: int) -> Round:
        plan = Round(faults=_faults(self.rng))
        for _ in range(self.size.collisions_per_round):
            pair = self.fresh.pop()
            fields = self.rng.choice(FIELDS[pair[0]])
            plan.collisions.append((self.edit("dynamics", pair, fields), self.edit("marketo", pair, fields)))
        owner: dict[tuple[tuple[str, int], str], str] = {}  # (pair, field) -> the side editing it
        while len(plan.edits) < self.size.edits_per_round:
            plan.edits.extend(self._concurrent(owner))
        if number == 0:
            plan.poison = self._poison()
            plan.bad_creates = self._bad_creates()
        size = self.size
        plan.qualifications = [self.event_leads.pop() for _ in range(size.qualifications_per_round)]
        plan.marketo_merges = [self.event_leads.pop() for _ in range(size.marketo_merges_per_round)]
        plan.dynamics_merges = [
            (self.event_contacts.pop(), self.event_contacts.pop())
            for _ in range(size.dynamics_merges_per_round)
        ]
        for _ in range(size.races_per_round):
            pair = self.event_leads.pop()
            plan.races.append((self.edit("dynamics", pair, RACED), self.edit("marketo", pair, RACED)))
        if number == self.kill_round:
            run = self.rng.choice(("dynamics-sweep", "marketo-poll"))
            plan.kill = Kill(run, elsewhere=self.rng.random() < 0.25)
        plan.park_and_replay = number == self.replay_round
        return plan

    def _bad_creates(self) -> list[Create]:
        n = self.value("bad")
        forms = (
            f"{n} lopez@chaos.example",  # a space
            f"jos\u00e9-{n}@chaos.example",  # not ASCII
            f"{n},x@chaos.example",  # a comma: two values to Marketo's filter
            f"{n}@chaos.example,victim@chaos.example",  # a comma and another person's address
        )
        return [Create("Chaos", f"{n}-{i}", email) for i, email in enumerate(self.rng.sample(forms, 2))]

    def _concurrent(self, owner: dict[tuple[tuple[str, int], str], str]) -> list[Edit | Create]:
        roll = self.rng.random()
        if roll < 0.06:
            n = self.value("new")
            return [Create("Chaos", n, f"{n}@chaos.example".lower())]
        pair = self.rng.choice(self.active)
        side = self.rng.choice(("dynamics", "marketo"))
        fields = self.rng.choice(FIELDS[pair[0]])
        if owner.setdefault((pair, fields[0]), side) != side:
            return []  # the other side edits this field in this round: that would be a collision
        if roll < 0.16:  # the same field twice on one side: the later value must win
            return [self.edit(side, pair, fields), self.edit(side, pair, fields)]
        if roll < 0.28:  # both sides, different fields of one pair
            other_side = "marketo" if side == "dynamics" else "dynamics"
            others = [f for f in FIELDS[pair[0]] if owner.get((pair, f[0]), other_side) == other_side]
            others = [f for f in others if f != fields]
            if others:
                second = self.rng.choice(others)
                owner[(pair, second[0])] = other_side
                return [self.edit(side, pair, fields), self.edit(other_side, pair, second)]
        return [self.edit(side, pair, fields)]

    def _poison(self) -> list[Edit]:
        edits = []
        for pair in self.poisoned:
            if pair[0] == "lead":
                title = ("too long " * 20)[:TOO_LONG_TITLE]
                edits.append(Edit("marketo", pair, "title", "jobtitle", title))
            else:
                edits.append(Edit("marketo", pair, "city", "address1_city", self.value(REJECTED_PREFIX)))
        return edits


def make_plan(seed: int, size: ScenarioSize) -> Scenario:
    planner = _Planner(seed, size)
    return Scenario(seed, size, [planner.round(n) for n in range(size.rounds)])


def poisoned_pairs(scenario: Scenario) -> set[tuple[str, int]]:
    return {edit.pair for r in scenario.rounds for edit in r.poison}


def event_pairs(scenario: Scenario) -> dict[PairKey, str]:
    """The pairs set aside for link-moving events, and the event each is for."""
    found: dict[PairKey, str] = {}
    for r in scenario.rounds:
        found.update(dict.fromkeys(r.qualifications, "qualified"))
        found.update(dict.fromkeys(r.marketo_merges, "marketo merge"))
        for merged, into in r.dynamics_merges:
            found.update({merged: "dynamics merge", into: "dynamics merge"})
        found.update({d.pair: "race" for d, _ in r.races})
    return found
