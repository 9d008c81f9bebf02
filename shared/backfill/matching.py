"""Matching: which person each Dynamics record belongs to. Never a guess.

Three passes over the staged items, each a range of buckets at a time (a hash join):

1. ``match_records`` (by record): each record meets its stored link. A record the sync filter
   excludes, a qualified lead, a record merged into another is left out (a linked one is handed
   to the live sync, which follows qualifications and merges); the others go on by the person
   they name (their link, else the Marketo id stored on them) or by their email.
2. ``match_persons`` (by person): a person meets the records that name it. Its linked record
   pairs with it; one record naming it by stored id pairs with it; several records naming one
   person are ambiguous. What is left goes on by email, with what it is: a free person, a person
   taken by its link, a person several records contest.
3. ``match_emails`` (by email, compared without case): one record and one free person pair; one
   record and no person makes a person to create; several records, or several persons, for one
   email are ambiguous; a record whose email belongs to a person linked elsewhere is ambiguous
   too (a lead and a contact for one person). Free persons no record wants are Marketo's only,
   and stay so: a Marketo person is not pushed to Dynamics.

An ambiguous match is reported with the records and persons involved. The admin's rule
(``Ambiguity``) may choose one (prefer the contact, the oldest...); the others stay unlinked and
are reported; with ``report`` (the default) none is linked.

The decisions are pure functions of what met (:func:`decide_person`, :func:`decide_email`); the
passes around them read and stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.backfill.context import DONE, MORE, Context, Outcome
from shared.backfill.job import Ambiguity, JobState
from shared.backfill.pairs import Found, plan_pairs, stage_creates
from shared.backfill.staging import (
    BY_EMAIL,
    BY_ID,
    HANDOVER,
    ISSUES,
    LINKS_BY_PERSON,
    LINKS_BY_RECORD,
    PERSONS,
    RECORDS,
    Item,
    bucket_of,
    person_bucket,
    ranges,
)
from shared.mapping import FieldMapping
from shared.normalize import email_key
from shared.ports import Link
from shared.redaction import mask_email
from shared.sync.journal import Journal
from shared.sync.planning import excluded

QUALIFIED = 1  # lead statecode


# --- what a record is -----------------------------------------------------------------------------


def left_out(mapping: FieldMapping, entity: str, row: dict[str, Any]) -> str | None:
    """Why the backfill leaves the record alone, or None (the live sync's rules: the sync
    filter, a qualified lead, a record merged into another)."""
    if excluded(mapping, row):
        return "excluded"
    if entity == "lead" and row.get("statecode") == QUALIFIED:
        return "qualified"
    if row.get("_masterid_value"):
        return "merged"
    return None


def claim_of(mapping: FieldMapping, row: dict[str, Any]) -> int | None:
    """The Marketo id stored on the record (``mdsync_marketoid``), if it is one."""
    value = str(row.get(mapping.links.dynamics_marketo_id) or "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def email_of(mapping: FieldMapping, entity: str, row: dict[str, Any]) -> str | None:
    return email_key(row.get(mapping.entity(entity).email.dynamics))


@dataclass(frozen=True)
class Rec:
    """A record as the decisions see it: its key, entity, when it was created, and the lead it
    was qualified from."""

    key: str
    entity: str
    created: str = ""
    origin: str | None = None


@dataclass(frozen=True)
class Issue:
    kind: str  # "ambiguous" (a rule may have chosen), "taken" (the email's person is linked elsewhere)
    why: str
    records: tuple[str, ...] = ()
    persons: tuple[int, ...] = ()
    chosen: str = ""  # what the rule chose ("" when none: nothing linked)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "why": self.why,
            "records": list(self.records),
            "persons": list(self.persons),
            "chosen": self.chosen,
        }


def choose_record(records: Sequence[Rec], rule: Ambiguity) -> Rec | None:
    """The record the rule picks, or None (``report``)."""
    if rule is Ambiguity.REPORT or not records:
        return None
    pool = list(records)
    if rule in (Ambiguity.PREFER_CONTACT, Ambiguity.PREFER_LEAD):
        wanted = "contact" if rule is Ambiguity.PREFER_CONTACT else "lead"
        pool = [r for r in records if r.entity == wanted] or pool
    ordered = sorted(pool, key=lambda r: (r.created, r.key))
    return ordered[-1] if rule is Ambiguity.NEWEST else ordered[0]


def choose_person(persons: Sequence[int], rule: Ambiguity) -> int | None:
    """The person the rule picks (ids grow with creation: the oldest is the lowest)."""
    if rule is Ambiguity.REPORT or not persons:
        return None
    return max(persons) if rule is Ambiguity.NEWEST else min(persons)


# --- pass 2: a person and the records that name it -------------------------------------------------


@dataclass
class PersonDecision:
    pair: tuple[str, str] | None = None  # (record key, how: "link" | "stored id" | "rule")
    person: str | None = None  # how the person goes on to email matching: free, taken, contested
    taken_by: str = ""
    to_email: list[str] = field(default_factory=list)  # records that go on by email
    handover: bool = False  # the live sync repairs this person's link (a side is gone)
    issues: list[Issue] = field(default_factory=list)


def decide_person(
    marketo_id: int,
    present: bool,
    linked_to: str | None,
    naming: Sequence[tuple[Rec, str]],
    rule: Ambiguity,
) -> PersonDecision:
    """``present``: the person was read; ``linked_to``: the record key of its stored link;
    ``naming``: the records that name it, each with how (``link``, ``claim``, or ``left`` for a
    linked record the backfill leaves to the live sync)."""
    decision = PersonDecision()
    if linked_to is not None:
        own = next((rec for rec, via in naming if rec.key == linked_to), None)
        others = [rec.key for rec, _ in naming if rec.key != linked_to]
        decision.to_email = others  # their stored id names a person linked elsewhere
        via = next((v for rec, v in naming if rec.key == linked_to), None)
        if own is not None and via != "left" and present:
            decision.pair = (own.key, "link")
        elif own is not None and via != "left":
            decision.handover = True  # linked, and the person is gone from Marketo
        elif own is None and present:
            decision.handover = True  # linked, and the record is gone from Dynamics
            decision.person, decision.taken_by = "taken", linked_to
        elif present:
            decision.person, decision.taken_by = "taken", linked_to
        return decision
    claimants = [rec for rec, via in naming if via == "claim"]
    if not present:
        decision.to_email = [rec.key for rec in claimants]  # a stored id of a person now gone
        return decision
    if len(claimants) == 1:
        decision.pair = (claimants[0].key, "stored id")
    elif len(claimants) > 1:
        chosen = choose_record(claimants, rule)
        keys = tuple(rec.key for rec in claimants)
        why = f"{len(claimants)} records store Marketo id {marketo_id}"
        decision.issues.append(Issue("ambiguous", why, keys, (marketo_id,), chosen.key if chosen else ""))
        if chosen is not None:
            decision.pair = (chosen.key, "rule")
        else:
            decision.person = "contested"
    else:
        decision.person = "free"
    return decision


# --- pass 3: an email ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonAtEmail:
    id: int
    state: str  # free, taken, contested
    taken_by: str = ""


@dataclass
class EmailDecision:
    pairs: list[tuple[str, int, str]] = field(default_factory=list)  # record key, person, how
    creates: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    follows_lead: list[str] = field(default_factory=list)  # contacts of a qualified, linked lead
    marketo_only: list[int] = field(default_factory=list)


def decide_email(
    email: str, records: Sequence[Rec], persons: Sequence[PersonAtEmail], rule: Ambiguity
) -> EmailDecision:
    decision = EmailDecision()
    masked = mask_email(email)
    leads_taken = {p.taken_by for p in persons if p.state == "taken"}
    recs = []
    for rec in records:
        if rec.origin and f"lead:{rec.origin}" in leads_taken:
            decision.follows_lead.append(rec.key)  # the live sync moves the person to it
        else:
            recs.append(rec)
    free = sorted(p.id for p in persons if p.state == "free")
    taken = [p for p in persons if p.state == "taken"]
    if not recs:
        decision.marketo_only = free
        return decision
    if any(p.state == "contested" for p in persons):
        keys = tuple(r.key for r in recs)
        ids = tuple(p.id for p in persons)
        why = f"email {masked}: its person is named by several records"
        decision.issues.append(Issue("ambiguous", why, keys, ids))
        return decision
    record = recs[0]
    if len(recs) > 1:
        chosen_record = choose_record(recs, rule)
        keys = tuple(r.key for r in recs)
        why = f"{len(recs)} records share the email {masked}"
        decision.issues.append(
            Issue("ambiguous", why, keys, tuple(free), chosen_record.key if chosen_record else "")
        )
        if chosen_record is None:
            return decision
        record = chosen_record
    if len(free) == 1:
        decision.pairs.append((record.key, free[0], "email" if len(recs) == 1 else "rule"))
    elif len(free) > 1:
        person = choose_person(free, rule)
        why = f"{len(free)} Marketo persons share the email {masked}"
        chosen = str(person) if person is not None else ""
        decision.issues.append(Issue("ambiguous", why, (record.key,), tuple(free), chosen))
        if person is not None:
            decision.pairs.append((record.key, person, "rule"))
    elif taken:
        why = f"the Marketo person with the email {masked} is linked to {taken[0].taken_by}"
        decision.issues.append(Issue("taken", why, (record.key,), tuple(p.id for p in taken)))
    else:
        decision.creates.append(record.key)
    return decision


# --- the passes ------------------------------------------------------------------------------------


def _rec(mapping: FieldMapping, key: str, value: dict[str, Any]) -> Rec:
    row = value["r"]
    return Rec(key, value["e"], str(row.get("createdon") or ""), _origin(row))


def _origin(row: dict[str, Any]) -> str | None:
    origin = row.get("_originatingleadid_value")
    return str(origin).lower() if origin else None


def email_bucket(email: str) -> int:
    return bucket_of(f"e:{email}")


def start_pass(ctx: Context, job: JobState, items: int) -> None:
    width = ctx.width(items, 5_000)
    job.cursor.update(width=width, at=0)
    job.progress[job.phase].total = len(ranges(width))


def _next_range(job: JobState) -> tuple[int, int]:
    first, last = ranges(int(job.cursor["width"]))[int(job.cursor["at"])]
    return first, last


def _advance(job: JobState) -> Outcome:
    job.cursor["at"] += 1
    job.advance(1)
    return DONE if job.cursor["at"] >= len(ranges(job.cursor["width"])) else MORE


def _issue_items(issues: Sequence[Issue]) -> list[Item]:
    items = []
    for issue in issues:
        key = f"{issue.kind}:{issue.records[0] if issue.records else issue.persons[0]}"
        items.append(Item(bucket_of(key), key, issue.to_json()))
    return items


def _note_issues(ctx: Context, job: JobState, issues: Sequence[Issue]) -> None:
    """Count and sample each issue; in a real run, put it in the sync log of every record and
    person it names (a preview writes nothing)."""
    journal = Journal(0)
    for issue in issues:
        job.count(f"issues_{issue.kind}")
        job.count("records_ambiguous", len(issue.records))
        job.count("resolved_by_rule", 1 if issue.chosen else 0)
        job.sample(issue.kind, issue.why + (f" -> {issue.chosen}" if issue.chosen else ""))
        rule = job.options.ambiguous.value
        outcome = f"the rule {rule} chose {issue.chosen}, the others are not linked"
        detail = f"backfill: {issue.why}; " + (outcome if issue.chosen else "not linked")
        for key in issue.records:
            entity, dynamics_id = _record_of(key)
            journal.note(Link(0, entity, dynamics_id), issue.kind, detail)
        for marketo_id in issue.persons:
            journal.note(Link(marketo_id, "-", ""), issue.kind, detail)
    if journal.entries and not job.options.dry_run:
        ctx.state.append_log(journal.entries)


def _record_of(key: str) -> tuple[str, str]:
    entity, dynamics_id = key.split(":", 1)
    return entity, dynamics_id


def match_records(ctx: Context, job: JobState) -> Outcome:
    """Pass 1: each record with its stored link."""
    first, last = _next_range(job)
    links = {i.key: i.value for i in ctx.staging.scan(LINKS_BY_RECORD, first, last)}
    by_id: list[Item] = []
    by_email: list[Item] = []
    handover: list[Item] = []
    creates: list[tuple[str, dict[str, Any]]] = []
    for item in ctx.staging.scan(RECORDS, first, last):
        entity, row = item.value["e"], item.value["r"]
        link = links.get(item.key)
        why = left_out(ctx.mapping, entity, row)
        if why is not None:
            job.count(f"records_{why}")
            job.sample(why, item.key)
            if link is not None:
                value = {**item.value, "via": "left", "m": link["m"]}
                by_id.append(Item(person_bucket(link["m"]), item.key, value))
                if why != "excluded":  # the live sync follows a qualification or a merge
                    entity, dynamics_id = _record_of(item.key)
                    handover.append(Item(item.bucket, item.key, {"e": entity, "d": dynamics_id}))
            continue
        claim = claim_of(ctx.mapping, row)
        email = email_of(ctx.mapping, entity, row)
        if link is not None:
            by_id.append(
                Item(person_bucket(link["m"]), item.key, {**item.value, "via": "link", "m": link["m"]})
            )
        elif claim is not None:
            by_id.append(Item(person_bucket(claim), item.key, {**item.value, "via": "claim", "m": claim}))
        elif email:
            by_email.append(Item(email_bucket(email), f"r:{item.key}", {**item.value, "email": email}))
        else:
            creates.append((item.key, item.value))
            job.count("records_without_email")
    ctx.staging.put(BY_ID, by_id)
    ctx.staging.put(BY_EMAIL, by_email)
    ctx.staging.put(HANDOVER, handover)
    job.count("handed_over", len(handover))
    stage_creates(ctx, job, creates)
    return _advance(job)


def match_persons(ctx: Context, job: JobState) -> Outcome:
    """Pass 2: each person with its link and the records that name it."""
    first, last = _next_range(job)
    persons = {int(i.key): i.value["p"] for i in ctx.staging.scan(PERSONS, first, last)}
    links = {int(i.key): i.value for i in ctx.staging.scan(LINKS_BY_PERSON, first, last)}
    naming: dict[int, list[Item]] = {}
    for item in ctx.staging.scan(BY_ID, first, last):
        naming.setdefault(int(item.value["m"]), []).append(item)
    found: list[Found] = []
    by_email: list[Item] = []
    handover: list[Item] = []
    creates: list[tuple[str, dict[str, Any]]] = []
    issues: list[Issue] = []
    rule = job.options.ambiguous
    for marketo_id in sorted({*persons, *links, *naming}):
        person, link = persons.get(marketo_id), links.get(marketo_id)
        records = {item.key: item for item in naming.get(marketo_id, [])}
        linked_to = f"{link['e']}:{link['d']}" if link is not None else None
        named = [
            (_rec(ctx.mapping, key, item.value), str(item.value["via"])) for key, item in records.items()
        ]
        decision = decide_person(marketo_id, person is not None, linked_to, named, rule)
        issues += decision.issues
        if decision.pair is not None and person is not None:
            key, how = decision.pair
            found.append(Found(marketo_id, person, records[key].value, how))
        if decision.handover:
            handover.append(Item(person_bucket(marketo_id), f"m:{marketo_id}", {"m": marketo_id}))
        if decision.person is not None and person is not None:
            email = email_key(person.get("email"))
            if email:
                value = {"p": person, "state": decision.person, "taken_by": decision.taken_by}
                by_email.append(Item(email_bucket(email), f"p:{marketo_id}", value))
            elif decision.person == "free":
                job.count("persons_marketo_only")
        for key in decision.to_email:
            value = records[key].value
            email = email_of(ctx.mapping, value["e"], value["r"])
            if email:
                by_email.append(
                    Item(email_bucket(email), f"r:{key}", {"e": value["e"], "r": value["r"], "email": email})
                )
            else:
                creates.append((key, {"e": value["e"], "r": value["r"]}))
    ctx.staging.put(BY_EMAIL, by_email)
    ctx.staging.put(HANDOVER, handover)
    ctx.staging.put(ISSUES, _issue_items(issues))
    job.count("handed_over", len(handover))
    _note_issues(ctx, job, issues)
    stage_creates(ctx, job, creates)
    plan_pairs(ctx, job, found)
    return _advance(job)


def match_emails(ctx: Context, job: JobState) -> Outcome:
    """Pass 3: what is left, by email."""
    first, last = _next_range(job)
    groups: dict[str, tuple[list[Item], list[Item]]] = {}
    for item in ctx.staging.scan(BY_EMAIL, first, last):
        if item.key.startswith("r:"):
            groups.setdefault(item.value["email"], ([], []))[0].append(item)
        else:
            email = email_key(item.value["p"].get("email")) or ""
            groups.setdefault(email, ([], []))[1].append(item)
    found: list[Found] = []
    creates: list[tuple[str, dict[str, Any]]] = []
    issues: list[Issue] = []
    for email, (record_items, person_items) in sorted(groups.items()):
        records = {item.key[2:]: item.value for item in record_items}
        persons = {int(item.key[2:]): item.value for item in person_items}
        at_email = [PersonAtEmail(m, v["state"], v.get("taken_by", "")) for m, v in persons.items()]
        recs = [_rec(ctx.mapping, key, value) for key, value in records.items()]
        decision = decide_email(email, recs, at_email, job.options.ambiguous)
        for key, marketo_id, how in decision.pairs:
            found.append(Found(marketo_id, persons[marketo_id]["p"], records[key], how))
        creates += [(key, records[key]) for key in decision.creates]
        issues += decision.issues
        job.count("persons_marketo_only", len(decision.marketo_only))
        job.count("records_following_their_lead", len(decision.follows_lead))
    ctx.staging.put(ISSUES, _issue_items(issues))
    _note_issues(ctx, job, issues)
    stage_creates(ctx, job, creates)
    plan_pairs(ctx, job, found)
    return _advance(job)
