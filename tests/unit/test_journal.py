"""A plan made on trial records into a journal of its own (shared/sync/journal.py): adopted, it
is as if recorded in the batch's journal, once; thrown away, it has told no one anything."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import Side, load_mapping
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Link
from shared.reconcile import Action, FieldDecision
from shared.sync.journal import Journal
from tests.metrics import Recorded, recorded_metrics

LEAD = load_mapping().lead
PEOPLE = [Link(1001, "lead", "l-1"), Link(1002, "contact", "c-2"), Link(0, "lead", "l-3")]
FIELDS = [f.marketo for f in LEAD.fields[:4]]
Step = Callable[[Journal], None]


def _notice(who: Link) -> Notice:
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id=str(who.marketo_id or 7),
        kind=Kind.UPDATED,
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def _collision(who: Link, winner: Side) -> Step:
    decision = FieldDecision(LEAD.fields[0], Action.TO_DYNAMICS, "x", True, winner, "both changed")
    return lambda j: j.collision(who, decision)


people = st.sampled_from(PEOPLE)
directions = st.sampled_from(["to_dynamics", "to_marketo"])
names = st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)
steps: st.SearchStrategy[Step] = st.one_of(
    st.builds(
        lambda w, a: lambda j: j.note(w, a, "a note about ana@fabrikam.example"), people, st.text(max_size=3)
    ),
    st.builds(
        lambda w, r, d, fs, act: lambda j: j.failed(w, r, "E1", "refused", fs, direction=d, activity=act),
        people,
        st.sampled_from(["validation", "refused", "not taken"]),
        directions,
        names,
        st.booleans(),
    ),
    st.builds(_collision, people, st.sampled_from([Side.MARKETO, Side.DYNAMICS])),
    st.builds(lambda w, d, fs: lambda j: j.created(w, d, "created", fs), people, directions, names),
    st.builds(lambda w, d, fs: lambda j: j.wrote(w, d, fs, [], [_notice(w)]), people, directions, names),
    st.builds(lambda w: lambda j: j.linked(w, "linked", "by email"), people),
    st.builds(lambda w: lambda j: j.unlinked(w, "deleted"), people),
    st.builds(lambda w: lambda j: j.gave_up(w, _notice(w), "parked"), people),
)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def told() -> Iterator[tuple[list[str], Recorded]]:
    """The journal's log lines and metrics while the block runs."""
    logger = logging.getLogger("shared.sync.journal")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with recorded_metrics() as metrics:
            yield handler.lines, metrics
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _without_times(record: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(record).items() if k not in {"at", "first_seen", "last_seen"}}


def recorded(journal: Journal) -> dict[str, Any]:
    """All a journal holds for the worker to store, times aside."""
    return {
        "result": journal.result,
        "entries": [replace(e, at=None) for e in journal.entries],
        "failures": [_without_times(f) for f in journal.failures],
        "errors": [_without_times(e) for e in journal.errors],
        "tallies": dict(journal.tallies.counts),
        "failed_persons": journal.failed_persons,
    }


def told_now(lines: list[str], metrics: Recorded) -> dict[str, Any]:
    counters = ("collisions", "failures", "writes")
    return {"lines": list(lines), **{name: metrics.points(name) for name in counters}}


@given(st.lists(steps, max_size=12), st.data())
def test_an_adopted_trial_is_as_if_recorded_in_the_batchs_journal_once(
    script: list[Step], data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(script)))
    end = data.draw(st.integers(start, len(script)))
    with told() as (lines, metrics):
        direct = Journal(5)
        for step in script:
            step(direct)
        expected = recorded(direct), told_now(lines, metrics)

    with told() as (lines, metrics):
        batch, trial = Journal(5), Journal.trial()
        for step in script[:start]:
            step(batch)
        for step in script[start:end]:
            step(trial)
        batch.adopt(trial)
        for step in script[end:]:
            step(batch)
        assert (recorded(batch), told_now(lines, metrics)) == expected


@given(st.lists(steps, min_size=1, max_size=12))
def test_a_trial_thrown_away_tells_no_one(script: list[Step]) -> None:
    with told() as (lines, metrics):
        trial = Journal.trial()
        for step in script:
            step(trial)
        assert told_now(lines, metrics) == {"lines": [], "collisions": {}, "failures": {}, "writes": {}}
